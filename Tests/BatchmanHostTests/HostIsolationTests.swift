import BatchmanTesting
import CBatchmanSystem
import Foundation
import Testing

/// `"isolation": "process"`: plugins that crash, hang, leak or write to standard output cost a
/// retry, never the host. Real worker processes, real signals.
@Suite(.timeLimit(.minutes(5)))
struct HostIsolationTests {
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    func isolatedManifest(_ scratch: Scratch, config: String, settings: String = "", defaults: String = #"{"frequency": 60000, "maxBatchSize": 8}"#) throws -> String {
        try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "isolation": "process", \#(settings.isEmpty ? "" : settings + ",") "config": \#(config)}}"#,
                             defaults: defaults)
    }

    @Test(arguments: [("segv", "SIGSEGV"), ("abort", "SIGABRT"), ("exit", "exit status 0")])
    func failsOnlyTheJobThatCrashesItsWorkerAlone(how: String, named: String) async throws {
        let scratch = try Scratch()
        let manifest = try isolatedManifest(scratch, config: #"{"crash_id": "5", "crash_how": "\#(how)"}"#)
        let host = try HostProcess(["run", manifest])
        host.send((1...8).map { HostRunTests.job("k", "\($0)") })

        let results = try await host.results(count: 8)
        #expect(Self.zombieChildren(of: host.hostProcessIdentifier).isEmpty, "every dead worker was reaped")
        let workers = Self.workers(of: host.hostProcessIdentifier)
        let (status, _) = try await host.finish()

        #expect(status == 0)
        let poison = try #require(results.first { $0.id == "5" })
        #expect(poison.errorReason == "crashed")
        #expect(poison.errorMessage == #"plugin "test" crashed (\#(named)) while processing this job"#)
        #expect(results.filter { $0.id != "5" }.allSatisfy { $0.status == "completed" }, "\(results.map(\.text))")
        #expect(workers.count == 1, "one live worker, k's (no job used the default key's): \(workers)")
        for worker in workers { await Self.waitUntilGone(worker) }
    }

    /// Outcomes emitted before the crash stand: only the rest of the batch goes to a new worker.
    @Test func keepsTheOutcomesAPluginEmittedBeforeItCrashed() async throws {
        let scratch = try Scratch()
        let manifest = try isolatedManifest(scratch, config: #"{"crash_id": "5", "crash_late": 1}"#)
        let host = try HostProcess(["run", manifest])
        host.send((1...8).map { HostRunTests.job("k", "\($0)") })
        _ = try await host.results(count: 8)
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(host.stderr.elements.contains { $0.contains("crashed (") && $0.contains(") in batch 1 with 4 of 8 jobs unanswered") },
                "jobs 1-4 were emitted before the crash and kept: \(host.stderr.elements)")
        #expect(results.first { $0.id == "5" }?.errorReason == "crashed")
        #expect(results.filter { $0.id != "5" }.allSatisfy { $0.status == "completed" })
    }

    @Test func killsAWorkerWhoseBatchOverrunsItsTimeoutAndGoesOnWithAFreshOne() async throws {
        let scratch = try Scratch()
        // Three attempts: "next" is answered at once, but on a machine loaded by the whole test
        // run one attempt can overrun too, and that must not decide the test.
        let manifest = try isolatedManifest(scratch, config: #"{"crash_id": "stuck", "crash_how": "hang"}"#,
                                            settings: #""timeout": 1000, "maxAttempts": 3, "initialBackoff": 0"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("k", "stuck"), HostRunTests.job("k", "next")])

        let (status, results) = try await { () async throws -> (Int32, [ResultLine]) in
            _ = try await host.results(count: 2)
            return try await host.finish()
        }()

        #expect(status == 0)
        let stuck = try #require(results.first { $0.id == "stuck" })
        #expect(stuck.errorReason == "max_retry" && stuck.attempts == 3 && stuck.errorMessage?.contains("timed out after 1.0 seconds") == true, "\(stuck.text)")
        #expect(results.first { $0.id == "next" }?.status == "completed", "a fresh worker took the next batch")
        #expect(host.stderr.elements.contains { $0.contains("its worker process was killed") })
    }

    @Test(arguments: ["process", "none"])
    func keepsWhatAPluginWritesToStandardOutputOutOfTheResults(isolation: String) async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "isolation": "\#(isolation)", "config": {"stdout": 1}}}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("k", "1"), HostRunTests.job("k", "2")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(host.stdout.elements.count == 2, "only result lines: \(host.stdout.elements)")
        #expect(results.allSatisfy { $0.status == "completed" })
        let source = isolation == "process" ? #"plugin of key "k" (worker"# : "a plugin (in-process)"
        #expect(host.stderr.elements.contains { $0.contains(source) && $0.contains("wrote to standard output: chatter from printf") },
                "\(host.stderr.elements)")
    }

    @Test func restartsALeakingWorkerThatHitsItsMemoryLimit() async throws {
        let scratch = try Scratch()
        let manifest = try isolatedManifest(scratch, config: #"{"leak_mb": 64}"#, settings: #""memoryLimit": 400000000"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--stats-per-key"])
        host.send((1...12).map { HostRunTests.job("k", "\($0)") })
        _ = try await host.results(count: 12)
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" }, "a fresh worker took each batch the leak killed: \(results.map(\.text))")
        let perKey = try #require(host.stderr.elements.first { $0.contains(#"stats: key "k""#) })
        let crashes = perKey.split(separator: " ").first { $0.hasPrefix("crashes=") }.flatMap { Int($0.dropFirst(8)) }
        #expect((crashes ?? 0) >= 1, "12 x 64 MiB is past the 400 MB limit: \(perKey)")
    }

    @Test func reportsAWorkerWhosePluginRefusesItsConfigurationLikeALoadError() async throws {
        let scratch = try Scratch()
        let manifest = try isolatedManifest(scratch, config: #"{"refuse": "no backend configured"}"#)

        let result = try await run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("keys.default: key \"default\": plugin"), "\(result.errorOutput)")
        #expect(result.errorOutput.contains("create() refused the configuration: no backend configured"), "\(result.errorOutput)")
        let line = try #require(result.errorOutput.split(separator: "\n").first { $0.contains("refused") })
        #expect(line.components(separatedBy: #"key "default""#).count == 2, "the key and plugin are named once: \(line)")
    }

    @Test func workersDieWithAHostKilledBySIGKILL() async throws {
        let scratch = try Scratch()
        let manifest = try isolatedManifest(scratch, config: #"{"wait_file": "/nonexistent/never"}"#, settings: #""debug": true"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("a", "1"), HostRunTests.job("b", "1")])
        await host.waitForLog(containing: #"key "a": batch"#)
        await host.waitForLog(containing: #"key "b": batch"#)
        let workers = Self.workers(of: host.hostProcessIdentifier)
        #expect(workers.count == 2, "a's and b's (no job used the default key's): \(workers)")
        let watched = workers.map { bm_pidfd_open($0) }

        host.signal(SIGKILL)

        for descriptor in watched where descriptor >= 0 {
            var ended = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            #expect(poll(&ended, 1, 60_000) == 1, "a worker outlived its host")
            close(descriptor)
        }
    }

    // MARK: - /proc

    /// Live worker processes started by `host`: their command line names the host's pid.
    static func workers(of host: Int32) -> [Int32] {
        processes().filter { pid in
            guard let line = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
            let arguments = line.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.count >= 3 && arguments[1] == "__worker" && arguments[2] == "\(host)"
        }
    }

    static func zombieChildren(of parent: Int32) -> [Int32] {
        processes().filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && fields[0] == "Z" && fields[1] == "\(parent)"
        }
    }

    static func processes() -> [Int32] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
    }

    /// Waits until `pid` has ended (a pidfd becomes readable).
    static func waitUntilGone(_ pid: Int32) async {
        let descriptor = bm_pidfd_open(pid)
        guard descriptor >= 0 else { return }  // already gone
        var ended = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        #expect(poll(&ended, 1, 60_000) == 1, "worker \(pid) outlived its host")
        close(descriptor)
    }
}
