import BatchmanTesting
import Foundation
import Testing

/// Plugins that break the ABI's contract, and plugin calls that must wait their turn without
/// holding anything up.
@Suite(.timeLimit(.minutes(5)))
struct HostContractTests {
    static let testPlugin = Products.plugin("BatchmanTestPlugin")
    static let echo = Products.plugin("EchoPlugin")

    @Test func refusesEmitAfterTheCallReturnedOrFromAnotherThreadWithoutCrashing() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"mode": "stray_emit"}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("k", "1")])
        _ = try await host.results(count: 1)  // the second call comes after the first returned
        host.send([HostRunTests.job("k", "2")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.map(\.resultJSON) == [
            #"{"after_return_other_thread":0,"during_other_thread":-1,"stale_same_thread":0}"#,
            #"{"after_return_other_thread":-1,"during_other_thread":-1,"stale_same_thread":-1}"#,
        ])
        let reports = host.stderr.elements.filter { $0.contains("was refused (returned -1). The ABI allows emit only through the emitter of the running call") }
        #expect(reports.count == 1, "reported once per instance: \(reports)")
    }

    @Test func refusesNullDataWithANonZeroLength() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"mode": "null_emit"}}}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("k", "1")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.map(\.resultJSON) == [#"{"null_emit":-1}"#])
    }

    @Test func writesOnePluginLogCallAsOneEscapedLine() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"log_on_create": "second"}}}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("default", "1")])  // instances are made for jobs
        let (status, _) = try await host.finish()

        #expect(status == 0)
        #expect(host.stderr.elements.contains { $0.hasSuffix(#"(key "default"): first line\nsecond\x00\r\nafter NUL"#) })
        #expect(!host.stderr.elements.contains { $0 == "second" || $0.hasPrefix("after NUL") })
    }

    /// A batch's timeout counts from its plugin call, not from the queue for a worker: with one
    /// worker held by a hung key, another key's batch waits without timing out, then runs once.
    @Test func countsATimeoutFromThePluginCallNotFromTheQueue() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("unblock")
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Self.testPlugin)", "timeout": 100},
             "hung": {"plugin": "\(Self.testPlugin)", "timeout": 300, "debug": true, "config": {"wait_file": "\(gate)"}}}
            """, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--workers", "1"])
        host.send([HostRunTests.job("hung", "1")])
        await host.waitForLog(containing: "flushed by size")
        host.send([HostRunTests.job("queued", "2")])

        // The hung call's own timeout is the clock: 300 ms after it started, longer than the
        // queued batch's 100 ms. Had the queued batch's timeout counted from the queue, its
        // result would be out first.
        let first = try await host.results(count: 1)[0]
        #expect(first.id == "1")
        #expect(first.errorReason == "timeout")
        _ = FileManager.default.createFile(atPath: gate, contents: nil)
        let (status, results) = try await host.finish()

        #expect(status == 0)
        let queued = try #require(results.first { $0.id == "2" })
        #expect(queued.status == "completed", "\(queued.text)")
        #expect(results.count == 2)
    }

    /// A non-concurrent plugin with maxInFlight > 1: batches waiting for the instance occupy
    /// no worker thread, so another key runs meanwhile.
    @Test func batchesWaitingForTheirInstanceDoNotHoldWorkers() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("unblock")
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Self.echo)"},
             "busy": {"plugin": "\(Self.testPlugin)", "maxInFlight": 4, "debug": true, "config": {"wait_file": "\(gate)"}}}
            """, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--workers", "2"])
        host.send((1...4).map { HostRunTests.job("busy", "\($0)") })
        await host.waitForLog(containing: "batch 4 flushed by size")

        host.send([HostRunTests.job("other", "x")])
        let other = try await host.results(count: 1)[0]
        #expect(other.key == "other")
        #expect(other.status == "completed")

        _ = FileManager.default.createFile(atPath: gate, contents: nil)
        let (status, results) = try await host.finish()
        #expect(status == 0)
        #expect(results.filter { $0.key == "busy" }.allSatisfy { $0.status == "completed" },
                "the plugin fails a batch if two calls overlap on one instance: \(results.compactMap(\.errorMessage))")
    }

    /// shutdownTimeout passes while a call is running: its jobs fail with their batch id and
    /// attempt, and destroy is not called under the running call.
    @Test func neverDestroysAnInstanceDuringItsCall() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "debug": true, "config": {"wait_file": "/nonexistent/never"}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1, "shutdownTimeout": 100}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("k", "stuck")])
        await host.waitForLog(containing: "flushed by size")
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 1)
        #expect(results.first?.errorReason == "shutdown_batch")
        #expect(results.first?.batchId == 1)
        #expect(results.first?.attempts == 1)
        #expect(host.stderr.elements.contains { $0.contains(#"key "k": plugin "test" is still inside process_batch; its instance is not destroyed"#) })
        #expect(!host.stderr.elements.contains { $0.contains("destroy called during process_batch") })
    }
}
