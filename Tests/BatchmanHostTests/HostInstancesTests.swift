import BatchmanHost
import BatchmanTesting
import CBatchmanSystem
import Foundation
import Glibc
import Testing

/// `"instances": "shared"`, worker pools, `--max-processes`, and instances made only for jobs,
/// with real plugins: the test plugin's `identity` mode answers each job with the create calls
/// its process has seen, its pid, the batch's key and the calls running on the instance.
@Suite struct HostInstancesTests {
    static let testPlugin = Products.plugin("BatchmanTestPlugin")
    static let concurrentPlugin = Products.plugin("BatchmanConcurrentTestPlugin")

    struct Identity: Equatable {
        var creates: Int
        var pid: Int
        var key: String
        var active: Int
    }

    static func identity(_ result: ResultLine) throws -> Identity {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.resultJSON.utf8)) as? [String: Any], "\(result.text)")
        return Identity(creates: try #require(object["creates"] as? Int), pid: try #require(object["pid"] as? Int),
                        key: try #require(object["key"] as? String), active: try #require(object["active"] as? Int))
    }

    static func jobs(keys: Int, prefix: String = "tenant-") -> [String] {
        (0..<keys).map { HostRunTests.job("\(prefix)\($0)", "1") }
    }

    // MARK: - One shared instance

    @Test func fiveThousandKeysGoThroughOneSharedInstanceInBatchesOfTheirOwn() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "instances": "shared", "config": {"mode": "identity"}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 100}"#)
        let host = try HostProcess(["run", manifest])
        host.feed(Self.jobs(keys: 5000))
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 5000)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.first { $0.status != "completed" }?.text ?? "")")
        let identities = try results.map(Self.identity)
        #expect(Set(identities.map(\.creates)) == [1], "one create for 5,000 keys")
        #expect(Set(identities.map(\.pid)).count == 1)
        #expect(zip(results, identities).allSatisfy { $0.key == $1.key }, "the plugin sees each batch's own key")
        #expect(Set(results.compactMap(\.batchId)).count == 5000, "batches stay per key")
        let summary = try #require(host.stderr.elements.first { $0.contains("stats: accepted=") })
        #expect(summary.contains(" instances=1 processes=0 "), "\(summary)")
    }

    @Test func callsIntoASharedInstanceAreOneAtATimeWithoutTheConcurrentFlag() async throws {
        let scratch = try Scratch()
        // The test plugin fails every job of a call that overlaps another on its instance.
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "instances": "shared", "config": {"mode": "identity", "sleep_ms": 2}}}"#,
                                            defaults: #"{"frequency": 5, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--workers", "4"])
        host.feed(Self.jobs(keys: 200))
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.first { $0.status != "completed" }?.text ?? "")")
        #expect(try results.map(Self.identity).allSatisfy { $0.active == 1 && $0.creates == 1 })
    }

    @Test func aConcurrentSharedInstanceRunsBatchesOfDifferentKeysAtOnce() async throws {
        let scratch = try Scratch()
        // Each call waits (20 s at most) until two run on the instance at once.
        let manifest = try scratch.manifest(
            #"{"default": {"plugin": "\#(Self.concurrentPlugin)", "instances": "shared", "config": {"mode": "identity", "rendezvous": 2}}}"#,
            defaults: #"{"frequency": 5, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--workers", "2"])
        host.send([HostRunTests.job("a", "1"), HostRunTests.job("b", "1")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        let identities = try results.map(Self.identity)
        #expect(identities.map(\.active) == [2, 2], "both calls ran in the one instance at once: \(results.map(\.text))")
        #expect(Set(identities.map(\.creates)) == [1])
    }

    // MARK: - Worker pools

    @Test func aSharedIsolatedEntryServesTenThousandKeysWithExactlyFourWorkers() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("gate")
        let manifest = try scratch.manifest(#"""
            {"default": {"plugin": "\#(Self.testPlugin)", "instances": "shared", "isolation": "process", "processes": 4, "debug": true,
                         "config": {"mode": "identity", "wait_file": "\#(gate)"}}}
            """#, defaults: #"{"frequency": 10, "maxBatchSize": 100}"#)
        let host = try HostProcess(["run", manifest])
        host.feed(Self.jobs(keys: 10_000))
        // Batches wait at the gate until every worker the pool may have has started.
        #expect(await host.waitForLog(containing: "test plugin instance created", skipping: 3) != nil)
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        let results = try await host.results(count: 10_000)
        let live = HostIsolationTests.workers(of: host.hostProcessIdentifier)
        let (status, _) = try await host.finish()

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.first { $0.status != "completed" }?.text ?? "")")
        let identities = try results.map(Self.identity)
        #expect(Set(identities.map(\.pid)).count == 4, "exactly 4 worker processes for 10,000 keys")
        #expect(Set(identities.map(\.creates)) == [1], "each worker created its instance once")
        #expect(live.count == 4, "\(live)")
        #expect(zip(results, identities).allSatisfy { $0.key == $1.key })
        let summary = try #require(host.stderr.elements.first { $0.contains("stats: accepted=") })
        #expect(summary.contains(" instances=4 processes=4 "), "\(summary)")
    }

    @Test func aCrashInASharedPoolFailsOnlyThePoisonJob() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"""
            {"default": {"plugin": "\#(Self.testPlugin)", "instances": "shared", "isolation": "process", "processes": 2,
                         "config": {"crash_id": "poison"}}}
            """#, defaults: #"{"frequency": 60000, "maxBatchSize": 8}"#)
        let host = try HostProcess(["run", manifest])
        var lines = (0..<40).map { HostRunTests.job("k\($0 % 5)", "\($0)") }
        lines.insert(HostRunTests.job("k2", "poison"), at: 17)
        host.send(lines)
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 41)
        let poison = try #require(results.first { $0.id == "poison" })
        #expect(poison.errorReason == "crashed", "\(poison.text)")
        #expect(results.filter { $0.id != "poison" }.allSatisfy { $0.status == "completed" }, "\(results.map(\.text))")
        #expect(host.stderr.elements.contains { $0.contains(#"key "k2": plugin "test" crashed"#) }, "the crash names the batch's key")
    }

    // MARK: - Made when needed

    @Test func anEntryNoJobUsesMakesNoInstanceAndCheckMakesOneOfEach() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"""
            {"default": {"plugin": "\#(Self.testPlugin)", "debug": true},
             "unused": {"plugin": "\#(Self.testPlugin)", "debug": true},
             "pool": {"plugin": "\#(Self.testPlugin)", "debug": true, "instances": "shared", "isolation": "process", "processes": 3}}
            """#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("a", "1")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.map(\.status) == ["completed"])
        let created = host.stderr.elements.filter { $0.contains("test plugin instance created") }
        #expect(created.count == 1, "only key a's: \(created)")
        let summary = try #require(host.stderr.elements.first { $0.contains("stats: accepted=") })
        #expect(summary.contains(" instances=1 processes=0 "), "\(summary)")

        let check = try await run(Products.batchman, ["check", manifest])
        #expect(check.status == 0, "\(check.errorOutput)")
        #expect(check.output.contains(#"key "default": test 0.0.1"#), "\(check.output)")
        #expect(check.output.contains(#"key "unused": test 0.0.1"#), "\(check.output)")
        #expect(check.output.contains(#"key "pool": test 0.0.1"#) && check.output.contains("shared by every key in 3 worker processes (instances=1 processes=1)"),
                "\(check.output)")
        #expect(check.output.contains("an instance per key, made on its first job, retired after 60.0 seconds unused (instances=1 processes=0)"), "\(check.output)")
        #expect(check.errorOutput.components(separatedBy: "test plugin instance created").count - 1 == 3, "one of each: \(check.errorOutput)")
    }

    @Test func anIdlePerKeyInstanceIsRetiredAndMadeAgainWhenNeeded() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "idleTimeout": 50, "debug": true, "config": {"mode": "identity"}}}"#,
                                            defaults: #"{"frequency": 5, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("a", "1")])
        let first = try await host.results(count: 1)
        #expect(await host.waitForLog(containing: #"key "a": plugin "test" instance retired: unused for"#) != nil)
        host.send([HostRunTests.job("a", "2")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(try first.map(Self.identity).map(\.creates) == [1])
        #expect(try results.map(Self.identity).map(\.creates) == [1, 2], "made again for the second job")
    }

    @Test func theInputNeverDecidesHowManyWorkersLive() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "isolation": "process", "config": {"mode": "identity", "sleep_ms": 5}}}"#,
                                            defaults: #"{"frequency": 5, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--max-processes", "2"])
        host.feed((0..<12).flatMap { key in (0..<3).map { HostRunTests.job("k\(key)", "\($0)") } })
        // Sampled while it runs: never more than the bound.
        var most = 0
        let hostPid = host.hostProcessIdentifier
        let watcher = Task.detached {
            var seen = 0
            while !Task.isCancelled {
                seen = max(seen, HostIsolationTests.workers(of: hostPid).count)
                try? await Task.sleep(for: .milliseconds(2))
            }
            return seen
        }
        let results = try await host.results(count: 36)
        watcher.cancel()
        most = await watcher.value
        let (status, _) = try await host.finish()

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" }, "a key over the bound waits, never fails: \(results.first { $0.status != "completed" }?.text ?? "")")
        #expect(most <= 2, "live workers seen: \(most)")
        #expect(Set(try results.map(Self.identity).map(\.pid)).count >= 12, "every key had a worker of its own in turn")
    }

    @Test func aLowLimitOnOpenFilesLowersTheBoundInsteadOfFailingWorkers() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "isolation": "process", "config": {"mode": "identity"}}}"#,
                                            defaults: #"{"frequency": 5, "maxBatchSize": 1}"#)
        let input = (0..<40).map { HostRunTests.job("k\($0)", "1") }.joined(separator: "\n") + "\n"

        // 40 workers would need 160 descriptors; 128 leave room for 16.
        let result = try await run("/bin/sh", ["-c", #"ulimit -n 128 && exec "$0" run "$1""#, Products.batchman, manifest], input: input)

        #expect(result.status == 0, "\(result.errorOutput)")
        #expect(result.errorOutput.contains("--max-processes 256 lowered to 16: the limit on open files (ulimit -n 128)"), "\(result.errorOutput)")
        let results = try await ResultLine.parse(result.output.split(separator: "\n").map(String.init))
        #expect(results.count == 40)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.first { $0.status != "completed" }?.text ?? "")")
    }

    // MARK: - Reload

    @Test func aReloadReplacesASharedInstanceWithOneNew() async throws {
        let scratch = try Scratch()
        let entry = { (tag: String) in #"{"default": {"plugin": "\#(Self.testPlugin)", "instances": "shared", "config": {"mode": "identity", "tag": "\#(tag)"}}}"# }
        let manifest = try scratch.manifest(entry("one"), defaults: #"{"frequency": 5, "maxBatchSize": 10}"#)
        let host = try HostProcess(["run", manifest])
        host.send((0..<20).map { HostRunTests.job("k\($0)", "before") })
        let before = try await host.results(count: 20)
        _ = try scratch.manifest(entry("two"), defaults: #"{"frequency": 5, "maxBatchSize": 10}"#)
        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 1: ok") != nil, "\(host.stderr.elements)")
        host.send((0..<20).map { HostRunTests.job("k\($0)", "after") })
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 40)
        #expect(results.allSatisfy { $0.status == "completed" })
        #expect(Set(try before.map(Self.identity).map(\.creates)) == [1])
        let after = try results.filter { $0.id == "after" }.map(Self.identity)
        #expect(Set(after.map(\.creates)) == [2], "one new instance for every key of the new configuration")
    }

    /// A reload proves the new configuration with a worker per entry while the old one still
    /// holds its pool: at a bound of 1 that worker must not wait for the old pool to end.
    @Test func aReloadIsNotStuckBehindTheWorkersOfTheConfigurationItReplaces() async throws {
        let scratch = try Scratch()
        let entry = { (tag: String) in
            #"{"default": {"plugin": "\#(Self.testPlugin)", "instances": "shared", "isolation": "process", "config": {"mode": "identity", "tag": "\#(tag)"}}}"#
        }
        let manifest = try scratch.manifest(entry("one"), defaults: #"{"frequency": 5, "maxBatchSize": 10}"#)
        let host = try HostProcess(["run", manifest, "--max-processes", "1"])
        host.send([HostRunTests.job("a", "before")])
        _ = try await host.results(count: 1)
        _ = try scratch.manifest(entry("two"), defaults: #"{"frequency": 5, "maxBatchSize": 10}"#)
        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 1: ok") != nil, "\(host.stderr.elements)")
        host.send([HostRunTests.job("a", "after")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.map(\.status) == ["completed", "completed"])
    }

    // MARK: - The manifest

    @Test(arguments: [
        (#""processes": 2"#, #"keys.default.processes: applies to "isolation": "process" only"#),
        (#""isolation": "process", "processes": 2"#, #"keys.default.processes: needs "instances": "shared""#),
        (#""instances": "pooled""#, "keys.default.instances"),
    ])
    func refusesInstanceSettingsThatDoNotFit(settings: String, problem: String) async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", \#(settings)}}"#)

        let result = try await run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        #expect(result.errorOutput.contains(problem), "\(result.errorOutput)")
    }
}
