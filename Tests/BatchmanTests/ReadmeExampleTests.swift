import Batchman
import BatchmanTesting
import Foundation
import Testing

// The README's library quick start, verbatim, so the documented code cannot rot.
// If you change one, change the other.

struct LogEntry: Sendable {
    var message: String
    var level: String
}

struct LogProcessor: BatchProcessor {
    func process(_ batch: Batch<LogEntry>) async throws -> [JobOutcome<Bool>] {
        batch.jobs.map { job in
            print("[\(job.payload.level)] \(job.payload.message)")
            return .completed(job, true)
        }
    }
}

func readmeQuickStart() async throws -> [JobResult<LogEntry, Bool>] {
    let batchman = try Batchman(
        config: BatchmanConfig(
            frequency: .milliseconds(100), maxBatchSize: 20,
            keyConfigOverrides: [KeyConfigOverride(key: "audit", maxBatchSize: 1)]),
        processor: { _ in LogProcessor() })

    // Callback style: returns at once; the callback runs when the job's batch completes.
    batchman.submit(id: "1", key: "app", payload: LogEntry(message: "Hello", level: "info")) { result in
        print("job \(result.id): \(result.status)")
    }

    // Async style: waits for the result.
    let audited = await batchman.submit(id: "1", key: "audit", payload: LogEntry(message: "login", level: "warning"))
    print("audit job \(audited.status) in batch \(audited.batchId!)")

    await batchman.shutdown()   // flushes "app" and waits for its result
    return [audited]
}

@Suite struct ReadmeExampleTests {
    @Test func quickStartRuns() async throws {
        let results = try await readmeQuickStart()
        #expect(results.map(\.status) == [.completed])
        #expect(results.first?.result == true)
    }
}

@Suite struct ReadmeConfigurationExampleTests {
    @Test func theConfigurationExampleIsValid() throws {
        // Verbatim from the README's Configuration section.
        let config = BatchmanConfig(
            defaults: BatcherConfig(frequency: .milliseconds(200), maxBatchSize: 100, maxAttempts: 4,
                                    timeout: .seconds(30), maxPending: 10_000, overflow: .block),
            keyConfigOverrides: [KeyConfigOverride(key: "audit", maxInFlight: 1, overflow: .reject)],
            maxPendingTotal: 100_000, shutdownTimeout: .seconds(20))

        let batchman = try Batchman<String, String, ContinuousClock>(config: config) { _ in
            ClosureProcessor<String, String> { batch in batch.jobs.map { .completed($0, $0.payload) } }
        }
        #expect(batchman.config.config(forKey: "audit").overflow == .reject)
        #expect(batchman.config.config(forKey: "other").maxAttempts == 4)
    }
}

// Verbatim from the README's "Many jobs at once, results a batch at a time".
final class Printer: ResultSink {
    func receive(_ results: [JobResult<LogEntry, Bool>]) {
        print("\(results.count) results: \(results.map(\.id).joined(separator: ", "))")
    }
}

@Suite struct ReadmeResultSinkExampleTests {
    @Test func theSinkExampleRuns() async throws {
        let batchman = try Batchman(config: BatchmanConfig(frequency: .milliseconds(100), maxBatchSize: 20), processor: { _ in LogProcessor() })
        let printer = Printer()
        batchman.submit(contentsOf: (1...3).map { (id: "\($0)", key: "app", payload: LogEntry(message: "m\($0)", level: "info")) },
                        to: printer)
        await batchman.shutdown()
        #expect(batchman.statistics().total.completed == 3)
    }
}

// Verbatim from the README's "Several processors".
struct Uppercase: BatchProcessor {
    func process(_ batch: Batch<String>) async throws -> [JobOutcome<String>] {
        batch.jobs.map { .completed($0, $0.payload.uppercased()) }
    }
}

struct Urgent: BatchProcessor {
    func process(_ batch: Batch<String>) async throws -> [JobOutcome<String>] {
        batch.jobs.map { .completed($0, "urgent: \($0.payload)") }
    }
}

@Suite struct ReadmeSeveralProcessorsExampleTests {
    @Test func eachKeyGetsItsFactorysProcessor() async throws {
        let processors = try Batchman<String, String, ContinuousClock>(
            config: BatchmanConfig(keyConfigOverrides: [KeyConfigOverride(key: "time-sensitive", frequency: .milliseconds(500), maxBatchSize: 4)]),
            processors: [
                "default": { _ in Uppercase() },
                "time-sensitive": { _ in Urgent() },
            ])
        let results = RecordLog<JobResult<String, String>>()
        processors.submit(id: "1", key: "other", payload: "hello") { results.append($0) }
        processors.submit(id: "1", key: "time-sensitive", payload: "now") { results.append($0) }
        await processors.shutdown()
        let byKey = Dictionary(uniqueKeysWithValues: results.elements.map { ($0.key, $0.result) })
        #expect(byKey["other"] == "HELLO")
        #expect(byKey["time-sensitive"] == "urgent: now")
    }

    @Test func theReadmeShowsTheSnippetVerbatim() throws {
        let readme = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        let snippet = """
            struct Urgent: BatchProcessor {
                func process(_ batch: Batch<String>) async throws -> [JobOutcome<String>] {
                    batch.jobs.map { .completed($0, "urgent: \\($0.payload)") }
                }
            }
            """
        #expect(readme.contains(snippet))
        #expect(readme.contains(#""default": { _ in Uppercase() },"#))
    }
}
