import BatchmanTesting
import Foundation
import Testing

/// Live reload: a new plugin build or manifest takes over without a restart and without
/// dropping a job. The real binary, real signals, real files.
@Suite(.timeLimit(.minutes(3)))
struct HostReloadTests {
    static let answerSource = Products.packageRoot.appendingPathComponent("Tests/Fixtures/answer_plugin.c").path

    /// Builds answer_plugin.c answering `answer` into `name` (a file name in `scratch`).
    @discardableResult
    static func buildAnswer(_ answer: String, as name: String, in scratch: Scratch) async throws -> String {
        let built = try await scratch.compilePlugin("Answer-\(answer)", source: answerSource, defines: ["ANSWER=\"\\\"\(answer)\\\"\""])
        let target = scratch.path(name)
        _ = try? FileManager.default.removeItem(atPath: target + ".tmp")
        try FileManager.default.copyItem(atPath: built, toPath: target + ".tmp")
        _ = rename(target + ".tmp", target)
        return target
    }

    /// Copies `source` over `target` in place, as `cp` does: same file, new contents.
    static func copyInPlace(_ source: String, over target: String, bytes: Int? = nil) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        let handle = try #require(FileHandle(forWritingAtPath: target))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: bytes.map { data.prefix($0) } ?? data)
        try handle.close()
    }

    func answers(_ results: [ResultLine]) -> [String: String] {
        Dictionary(results.map { ($0.id ?? "?", $0.resultJSON) }, uniquingKeysWith: { first, _ in first + " and again" })
    }

    @Test(arguments: ["none", "process"])
    func answersWithTheOldBuildBeforeAReloadAndTheNewOneAfter(isolation: String) async throws {
        let scratch = try Scratch()
        try await Self.buildAnswer("v1", as: "libAnswer.so", in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "libAnswer.so", "isolation": "\#(isolation)"}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 100}"#)
        let host = try HostProcess(["run", manifest])
        host.send((1...5).map { HostRunTests.job("k", "\($0)") })
        // The five are read (and wait in their batch) before the reload.
        await host.waitForLog(containing: "reading jobs from standard input")
        await host.waitUntilAccepted(5)

        try await Self.copyInPlace(try Self.buildAnswer("v2", as: "libAnswer-next.so", in: scratch), over: scratch.path("libAnswer.so"))
        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 1: ok, plugins changed: answer (key default)") != nil, "\(host.stderr.elements)")
        host.send((6...10).map { HostRunTests.job("k", "\($0)") })
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 10, "every line has exactly one result")
        let byId = answers(results)
        #expect((1...5).allSatisfy { byId["\($0)"] == #""v1""# }, "read before the reload: the old build. \(byId)")
        #expect((6...10).allSatisfy { byId["\($0)"] == #""v2""# }, "read after it: the new build. \(byId)")
        #expect(Set(results.compactMap(\.batchId)).count == 2, "no batch mixes builds, and batch ids stay unique")
        #expect(host.stderr.elements.contains { $0.contains("reloads=1 lastReload=ok") })
    }

    @Test func keepsTheRunningConfigurationWhenAReloadFailsAndTakesALaterGoodOne() async throws {
        let scratch = try Scratch()
        try await Self.buildAnswer("v1", as: "libAnswer.so", in: scratch)
        let good = #"{"defaults": {"frequency": 60000, "maxBatchSize": 1}, "keys": {"default": {"plugin": "libAnswer.so"}}}"#
        let manifest = try scratch.write("plugins.json", good)
        let host = try HostProcess(["run", manifest])
        await host.waitForLog(containing: "reading jobs from standard input")

        try scratch.write("plugins.json", #"{"keys": {"default": {"plugin": "libAnswer.so", "frequncy": 5}}}"#)
        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 1: failed, kept the running configuration") != nil)
        #expect(host.stderr.elements.contains { $0.contains(#"reload failed: "# ) && $0.contains(#"keys.default.frequncy: unknown field; did you mean "frequency"?"#) })
        host.send([HostRunTests.job("k", "1")])
        #expect(try await host.results(count: 1)[0].resultJSON == #""v1""#, "the old configuration still answers")

        try scratch.write("plugins.json", #"{"keys": {"default": {"plugin": "\#(Products.plugin("BatchmanTestPlugin"))", "config": {"refuse": "not today"}}}}"#)
        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 2: failed, kept the running configuration") != nil)
        #expect(host.stderr.elements.contains { $0.contains("reload failed: ") && $0.contains("create() refused the configuration: not today") })
        host.send([HostRunTests.job("k", "2")])
        #expect(try await host.results(count: 2)[1].resultJSON == #""v1""#)

        try await Self.buildAnswer("v2", as: "libAnswer.so", in: scratch)
        try scratch.write("plugins.json", good)
        host.signal(SIGHUP)
        let third = await host.waitForLog(containing: "reload 3: ")
        #expect(third?.hasSuffix("reload 3: ok, plugins changed: answer (key default)") == true, "\(host.stderr.elements)")
        host.send([HostRunTests.job("k", "3")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(answers(results) == ["1": #""v1""#, "2": #""v1""#, "3": #""v2""#])
    }

    @Test func carriesOutASIGHUPThatArrivesDuringAReloadAfterIt() async throws {
        let scratch = try Scratch()
        try await Self.buildAnswer("v1", as: "libAnswer.so", in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "libAnswer.so", "debug": true}}"#)
        let host = try HostProcess(["run", manifest])
        await host.waitForLog(containing: "reading jobs from standard input")

        host.signal(SIGHUP)
        await host.waitForLog(containing: "received SIGHUP: reloading")
        host.signal(SIGHUP)

        #expect(await host.waitForLog(containing: "reload 1: ok") != nil)
        #expect(await host.waitForLog(containing: "reload 2: ok") != nil, "the second SIGHUP is not lost: \(host.stderr.elements)")
        #expect(host.stderr.elements.contains { $0.contains("loaded from a private copy of") })
        let (status, _) = try await host.finish()
        #expect(status == 0)
    }

    @Test func tenReloadsUnderAContinuousStreamLoseNothingAndLeakNothing() async throws {
        let scratch = try Scratch()
        try await Self.buildAnswer("v1", as: "libAnswer.so", in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "libAnswer.so"}}"#, defaults: #"{"frequency": 5, "maxBatchSize": 50}"#)
        let host = try HostProcess(["run", manifest])
        await host.waitForLog(containing: "reading jobs from standard input")
        let pid = host.hostProcessIdentifier
        let before = (Self.descriptors(of: pid), Self.threads(of: pid))

        var sent = 0
        for reload in 1...10 {
            host.send((1...500).map { HostRunTests.job("k\($0 % 7)", "\(sent + $0)") })
            sent += 500
            try await Self.buildAnswer(reload % 2 == 0 ? "v1" : "v2", as: "libAnswer.so", in: scratch)
            host.signal(SIGHUP)
            #expect(await host.waitForLog(containing: "reload \(reload): ok") != nil)
        }
        host.send((1...500).map { HostRunTests.job("k\($0 % 7)", "\(sent + $0)") })
        sent += 500
        _ = try await host.results(count: sent)
        let after = (Self.descriptors(of: pid), Self.threads(of: pid))
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == sent)
        #expect(Set(results.map { "\($0.key!)/\($0.id!)" }).count == sent, "no job lost or answered twice")
        #expect(results.allSatisfy { $0.status == "completed" })
        #expect(after.0 <= before.0 + 2, "descriptors: \(before.0) before, \(after.0) after ten reloads")
        #expect(after.1 <= before.1 + 4, "threads: \(before.1) before, \(after.1) after ten reloads")
    }

    @Test func watchLoadsAPluginCopiedInPlaceOnlyOnceItIsWhole() async throws {
        let scratch = try Scratch()
        let plugin = try await Self.buildAnswer("v1", as: "libAnswer.so", in: scratch)
        let next = try await Self.buildAnswer("v2", as: "libAnswer-next.so", in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "libAnswer.so"}}"#, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--watch"])
        await host.waitForLog(containing: "reading jobs from standard input")

        // Half a library first: the watcher sees a change, and must wait for it to settle.
        try Self.copyInPlace(next, over: plugin, bytes: 4096)
        #expect(await host.waitForLog(containing: "--watch: \(plugin) changed; reloading once it has not changed") != nil)
        try Self.copyInPlace(next, over: plugin)
        #expect(await host.waitForLog(containing: "reload 1: ok, plugins changed: answer (key default)") != nil, "\(host.stderr.elements)")
        host.send([HostRunTests.job("k", "1")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.map(\.resultJSON) == [#""v2""#])
        #expect(!host.stderr.elements.contains { $0.contains("reload failed") }, "the half-written file was never loaded")
    }

    @Test func failsTheReplacedConfigurationsUnfinishedJobsAfterReloadTimeout() async throws {
        let scratch = try Scratch()
        let testPlugin = Products.plugin("BatchmanTestPlugin")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(testPlugin)", "debug": true, "config": {"wait_file": "/nonexistent/never"}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1, "reloadTimeout": 200}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("k", "stuck")])
        await host.waitForLog(containing: "flushed by size")

        try scratch.manifest(#"{"default": {"plugin": "\#(testPlugin)"}}"#, defaults: #"{"frequency": 60000, "maxBatchSize": 1, "reloadTimeout": 200}"#)
        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 1: ok") != nil)
        host.send([HostRunTests.job("k", "next")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        let stuck = try #require(results.first { $0.id == "stuck" })
        #expect(stuck.errorReason == "shutdown_batch")
        #expect(stuck.errorMessage?.hasPrefix("reload timed out after 0.2 seconds") == true, "\(stuck.text)")
        #expect(results.first { $0.id == "next" }?.status == "completed", "the new configuration went on once the old one gave up")
    }

    static func descriptors(of pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    static func threads(of pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Threads:") }
            .flatMap { Int($0.dropFirst(8).trimmingCharacters(in: .whitespaces)) } ?? -1
    }
}

/// A plugin file still being written is refused with a sentence, never mapped and run.
@Suite struct TruncatedPluginTests {
    @Test func refusesALibraryShorterThanItsHeadersSay() async throws {
        let scratch = try Scratch()
        let whole = try Data(contentsOf: URL(fileURLWithPath: Products.plugin("EchoPlugin")))
        _ = FileManager.default.createFile(atPath: scratch.path("libHalf.so"), contents: whole.prefix(4096))
        let manifest = try scratch.manifest(#"{"default": {"plugin": "libHalf.so"}}"#)

        let result = try await run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("cannot be loaded: it is 4096 bytes but its ELF headers need"), "\(result.errorOutput)")
        #expect(result.errorOutput.contains("still being written, or cut short"))
    }
}
