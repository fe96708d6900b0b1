import BatchmanTesting
import Foundation
import Testing

/// Retries, backpressure and statistics through the real host and a real plugin.
@Suite(.timeLimit(.minutes(5)))
struct HostResilienceTests {
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    func runJobs(_ manifest: String, _ lines: [String], options: [String] = []) async throws -> (HostProcess, [ResultLine]) {
        let host = try HostProcess(["run", manifest] + options)
        host.send(lines)
        let (status, results) = try await host.finish()
        #expect(status == 0, "\(host.stderr.elements)")
        return (host, results)
    }

    @Test func retriesTheJobsAPluginAsksToRetryAndOnlyThose() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Self.testPlugin)", "maxAttempts": 3, "initialBackoff": 0,
                         "config": {"retry_ids": "flaky", "retry_until": 3}},
             "strict": {"plugin": "\(Self.testPlugin)", "maxAttempts": 2, "initialBackoff": 0,
                        "config": {"retry_ids": "flaky", "retry_until": 3}}}
            """, defaults: #"{"frequency": 10, "maxBatchSize": 10}"#)

        let (_, results) = try await runJobs(manifest, [
            #"{"key":"default","id":"flaky","payload":1}"#, #"{"key":"default","id":"steady","payload":2}"#,
            #"{"key":"strict","id":"flaky","payload":3}"#,
        ])

        let byJob = Dictionary(uniqueKeysWithValues: results.map { ("\($0.key!)/\($0.id!)", $0) })
        #expect(byJob["default/flaky"]?.status == "completed")
        #expect(byJob["default/flaky"]?.attempts == 3)
        #expect(byJob["default/steady"]?.attempts == 1, "a batch-mate is not sent again")
        #expect(byJob["strict/flaky"]?.errorReason == "max_retry")
        #expect(byJob["strict/flaky"]?.errorMessage == "transient failure on attempt 2")
    }

    @Test func neverCallsANonConcurrentPluginTwiceAtOnceEvenWithSeveralBatchesInFlight() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "maxInFlight": 4, "config": {"sleep_ms": 20}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)

        let (_, results) = try await runJobs(manifest, (1...8).map { #"{"key":"k","id":"\#($0)","payload":\#($0)}"# }, options: ["--workers", "4"])

        #expect(results.count == 8)
        #expect(results.allSatisfy { $0.status == "completed" },
                "the plugin fails a batch if two calls overlap on one instance: \(results.compactMap(\.errorMessage))")
    }

    @Test func answersAnOverrunningPluginCallWithTimeoutAndWaitsForItToReturn() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("unblock")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "timeout": 100, "config": {"wait_file": "\#(gate)"}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])

        host.send([#"{"key":"k","id":"stuck","payload":1}"#, #"{"key":"k","id":"next","payload":2}"#])
        let timedOut = try await host.results(count: 1)[0]
        #expect(timedOut.id == "stuck")
        #expect(timedOut.errorReason == "timeout")
        #expect(timedOut.errorMessage?.hasPrefix("batch 1 timed out after 0.1 seconds") == true)

        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        let (status, results) = try await host.finish()
        #expect(status == 0)
        #expect(results.map(\.id) == ["stuck", "next"], "the late outcome of the stuck call was dropped")
        #expect(results[1].status == "completed")
    }

    @Test func printsAStatisticsLineOnExitAndPerKeyOnRequest() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Products.plugin("EchoPlugin"))"}}"#)

        let (host, _) = try await runJobs(manifest, [#"{"key":"a","id":"1","payload":1}"#, #"{"key":"b","id":"1","payload":1}"#, "oops"],
                                          options: ["--stats-per-key"])

        let log = host.stderr.elements
        let summary = try #require(log.first { $0.contains("stats: accepted=") })
        #expect(summary.contains("accepted=2 completed=2 failed=1 (invalid_input=1) retried=0 inFlight=0 pending=0 batches=2 meanBatchSize=1.0 instances=2 processes=0 peakRSS="))
        #expect(log.contains { $0.contains(#"stats: key "a": accepted=1 completed=1"#) })
        #expect(log.contains { $0.contains(#"stats: key "b": accepted=1 completed=1"#) })
    }

    @Test func blockKeepsMemoryBoundedWhileAMillionLinesMeetAStalledPlugin() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("unblock")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"wait_file": "\#(gate)"}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 500, "maxPending": 2000, "overflow": "block", "maxPendingTotal": 5000}"#)
        let input = scratch.path("jobs.ndjson")
        #expect(FileManager.default.createFile(atPath: input, contents: nil))
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: input))
        let padding = String(repeating: "x", count: 40)
        for block in 0..<100 {
            let lines = (0..<10_000).map { index -> String in
                let id = block * 10_000 + index
                return #"{"key":"k\#(id % 4)","id":"\#(id)","payload":{"n":\#(id),"pad":"\#(padding)"}}"#
            }
            file.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        }
        try file.close()

        let host = try HostProcess(["run", manifest, "--input", input, "--output", scratch.path("results.ndjson"), "--stats-interval", "1"])
        // The plugin holds every batch, so the reader must stop at maxPendingTotal and wait.
        await host.waitForLog(containing: "pending=5000 ")
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        #expect(await host.exitStatus() == 0)

        let statistics = host.stderr.elements.filter { $0.contains("stats: accepted=") }
        let pending = statistics.compactMap { $0.split(separator: " ").first { $0.hasPrefix("pending=") }.flatMap { Int($0.dropFirst(8)) } }
        #expect(pending.allSatisfy { $0 <= 5000 }, "never more than maxPendingTotal jobs held: \(pending)")
        let summary = try #require(statistics.last)
        #expect(summary.contains("accepted=1000000 completed=1000000 failed=0"))
        let peak = try #require(Double(summary.split(separator: "peakRSS=").last!.dropLast(3)))
        // 1,000,000 jobs held at once would take several hundred MiB; 5,000 take a few.
        #expect(peak < 100, "peak RSS \(peak) MiB")
    }
}
