import BatchmanTesting
import Foundation
import Testing

/// What the end of input waits for, what order a key's jobs reach the plugin in, and how much
/// of the input the host holds: through the real host and the test plugin.
@Suite(.timeLimit(.minutes(3)))
struct HostDrainOrderAndMemoryTests {
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    func lines(_ count: Int, keys: Int = 1, payload: Int = 0) -> [String] {
        let padding = String(repeating: "p", count: payload)
        return (0..<count).map { payload == 0 ? #"{"key":"k\#($0 % keys)","id":"\#($0)","payload":\#($0)}"#
                                              : #"{"key":"k\#($0 % keys)","id":"\#($0)","payload":"\#(padding)"}"# }
    }

    static func accepted(in statistics: String) -> Int? {
        statistics.split(separator: "accepted=").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) }
    }

    @Test func theEndOfInputDrainsRetriesWithTheirBackoff() async throws {
        let scratch = try Scratch()
        let unlocked = scratch.path("unlocked")
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Self.testPlugin)", "maxAttempts": 200, "initialBackoff": 100, "maxBackoff": 1000,
                         "config": {"retry_while_missing": "\(unlocked)"}}}
            """, defaults: #"{"frequency": 10, "maxBatchSize": 100}"#)
        let input = try scratch.write("jobs.ndjson", lines(50).map { $0 + "\n" }.joined())
        let host = try HostProcess(["run", manifest, "--input", input])

        // Input has ended long since; the backend is locked for a while. (Without backoff the
        // drain burned 20 attempts in 42 ms; with it 200 take about 100 s.)
        #expect(await host.waitForLog(containing: "backend locked on attempt 2") != nil)
        _ = FileManager.default.createFile(atPath: unlocked, contents: nil)
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 50)
        #expect(results.allSatisfy { $0.status == "completed" && $0.attempts >= 2 }, "\(results.first { $0.status != "completed" }?.text ?? "")")
    }

    @Test func memoryIsBoundedByDefaultWhateverTheInput() async throws {
        let scratch = try Scratch()
        let unblock = scratch.path("unblock")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"wait_file": "\#(unblock)"}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 500}"#)
        // 40,000 jobs of 2 KB: 81 MB of input, far more than the default 64 MiB may hold.
        let input = try scratch.write("jobs.ndjson", lines(40_000, keys: 4, payload: 2000).map { $0 + "\n" }.joined())
        let host = try HostProcess(["run", manifest, "--input", input])

        #expect(await host.waitForLog(containing: "reading input paused: accepted jobs without a result take --max-pending-bytes (67108864)") != nil)
        let seen = host.stderr.elements.count
        host.signal(SIGUSR1)
        let statistics = try #require(await host.waitForLog(containing: "stats: accepted=", skipping: seen))
        let accepted = try #require(Self.accepted(in: statistics))
        let peak = try #require(Double(statistics.split(separator: "peakRSS=").last!.dropLast(3)))
        #expect(accepted < 30_000, "about 64 MiB of 2.5 KB jobs: \(statistics)")
        #expect(peak < 128, "the reader stopped, memory with it: \(statistics)")

        _ = FileManager.default.createFile(atPath: unblock, contents: nil)
        #expect(await host.exitStatus() == 0)
        #expect(host.stdout.elements.count == 40_000, "nothing was dropped")
    }

    @Test func maxPendingBytesSetsTheBound() async throws {
        let scratch = try Scratch()
        let unblock = scratch.path("unblock")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"wait_file": "\#(unblock)"}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 500}"#)
        let input = try scratch.write("jobs.ndjson", lines(20_000).map { $0 + "\n" }.joined())
        let host = try HostProcess(["run", manifest, "--input", input, "--max-pending-bytes", "1048576"])

        #expect(await host.waitForLog(containing: "--max-pending-bytes (1048576)") != nil)
        let seen = host.stderr.elements.count
        host.signal(SIGUSR1)
        let statistics = try #require(await host.waitForLog(containing: "stats: accepted=", skipping: seen))
        // 1 MiB at about 560 bytes a job, and at most one read (64 KiB of lines) past it.
        #expect((try #require(Self.accepted(in: statistics))) < 4_000, "\(statistics)")
        _ = FileManager.default.createFile(atPath: unblock, contents: nil)
        #expect(await host.exitStatus() == 0)
        #expect(host.stdout.elements.count == 20_000)
    }

    @Test(arguments: ["relaxed", "strict"])
    func strictOrderingSendsRetriedJobsAloneBeforeTheKeysLaterJobs(ordering: String) async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Self.testPlugin)", "ordering": "\(ordering)", "maxAttempts": 3, "initialBackoff": 50, "maxBackoff": 50,
                         "config": {"retry_ids": "a", "retry_until": 2, "log_batches": 1, "sleep_ms": 200}}}
            """, defaults: #"{"frequency": 60000, "maxBatchSize": 2}"#)
        let host = try HostProcess(["run", manifest])
        host.send(["a", "b", "c", "d"].map { HostRunTests.job("k", $0) })
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" })
        let batches = host.stderr.elements.compactMap { $0.split(separator: "batch: ").dropFirst().first.map(String.init) }
        // The plugin holds batch 1 for 200 ms: c and d are cut (full) before a is retried.
        #expect(batches == (ordering == "strict" ? ["a,b", "a", "c,d"] : ["a,b", "c,d", "a"]), "\(host.stderr.elements)")
    }

    @Test func strictOrderingNeedsOneBatchInFlight() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "EchoPlugin", "ordering": "strict", "maxInFlight": 2}}"#)

        let result = try await run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("keys.default: ordering strict needs maxInFlight 1"), "\(result.errorOutput)")
    }
}
