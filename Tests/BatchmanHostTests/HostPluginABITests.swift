import Foundation
import Testing

/// ABI 1.1 end to end, with real plugins built by `cc`: a plugin built against the 1.0 header
/// runs unchanged, and a 1.1 plugin gets its deadline, redelivery flags, manifest folder and
/// debug flag, names its failures, sets a retry-after and pauses its key, in-process and in a
/// worker process alike.
@Suite struct HostPluginABITests {
    static let hintsSource = Products.packageRoot.appendingPathComponent("Tests/Fixtures/abi-1.1/hints_plugin.c").path
    static let legacySource = Products.packageRoot.appendingPathComponent("Tests/Fixtures/abi-1.0/legacy_plugin.c").path
    static let legacyHeaders = Products.packageRoot.appendingPathComponent("Tests/Fixtures/abi-1.0").path

    func hints(in scratch: Scratch) async throws -> String {
        try await scratch.compilePlugin("hints", source: Self.hintsSource, defines: ["_POSIX_C_SOURCE=200809L"])
    }

    func lines(_ jobs: [(key: String, id: String, payload: String)]) -> String {
        jobs.map { #"{"key":"\#($0.key)","id":"\#($0.id)","payload":"\#($0.payload)"}"# + "\n" }.joined()
    }

    func results(_ output: String) throws -> [String: ResultLine] {
        let parsed = try output.split(separator: "\n").map { try ResultLine.parse(String($0)) }
        return Dictionary(parsed.map { ($0.id ?? "?", $0) }, uniquingKeysWith: { first, _ in first })
    }

    func seconds(from start: String, to end: String) throws -> Double {
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let from = try #require(format.date(from: start)), to = try #require(format.date(from: end))
        return to.timeIntervalSince(from)
    }

    @Test(arguments: ["none", "process"])
    func aPluginBuiltAgainstTheOneZeroHeaderRunsUnchanged(isolation: String) async throws {
        let scratch = try Scratch()
        let library = scratch.path("liblegacy.so")
        let build = try await run("/usr/bin/env", ["cc", "-shared", "-fPIC", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", Self.legacyHeaders,
                                                   Self.legacySource, "-o", library])
        #expect(build.status == 0, "\(build.errorOutput)")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(library)", "isolation": "\#(isolation)", "config": {"a": 1}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 10, "maxAttempts": 2, "initialBackoff": 1}"#)

        let host = try await run(Products.batchman, ["run", manifest], input: lines([("k", "1", "fail"), ("k", "2", "retry"), ("k", "3", "x")]))

        #expect(host.status == 0, "\(host.errorOutput)")
        let byId = try results(host.output)
        #expect(byId["1"]?.errorReason == "error")
        #expect(byId["1"]?.errorMessage == "failed on purpose")
        #expect(byId["2"]?.status == "completed")
        #expect(byId["2"]?.resultJSON == #"{"attempt":2,"config":{"a":1},"id":"2","key":"k"}"#)
        #expect(byId["3"]?.resultJSON == #"{"attempt":1,"config":{"a":1},"id":"3","key":"k"}"#)
        #expect(host.errorOutput.contains("legacy 1.0 plugin created"))
        let check = try await run(Products.batchman, ["plugin-test", library])
        #expect(check.output.contains("ABI 1.0"), "\(check.output)")
    }

    @Test(arguments: ["none", "process"])
    func aPluginIsToldItsDeadlineItsManifestsFolderAndWhetherDebugIsOn(isolation: String) async throws {
        let scratch = try Scratch()
        let library = try await hints(in: scratch)
        let manifest = try scratch.manifest(#"""
            {"timed": {"plugin": "\#(library)", "isolation": "\#(isolation)", "timeout": 30000, "debug": true},
             "untimed": {"plugin": "\#(library)", "isolation": "\#(isolation)"}}
            """#, defaults: #"{"frequency": 20, "maxBatchSize": 10}"#)

        let host = try await run(Products.batchman, ["run", manifest], input: lines([("timed", "1", "report"), ("untimed", "2", "report")]))

        #expect(host.status == 0, "\(host.errorOutput)")
        let byId = try results(host.output)
        // As resultJSON writes it, slashes escaped.
        let folder = URL(fileURLWithPath: manifest).deletingLastPathComponent().path.replacingOccurrences(of: "/", with: "\\/")
        #expect(byId["1"]?.resultJSON == #"{"attempt":1,"deadline":"ahead","debug":true,"manifestDir":"\#(folder)","redelivered":false}"#)
        #expect(byId["2"]?.resultJSON == #"{"attempt":1,"deadline":"none","debug":false,"manifestDir":"\#(folder)","redelivered":false}"#)
    }

    @Test(arguments: ["none", "process"])
    func aReasonThePluginNamesBecomesTheResultsErrorReason(isolation: String) async throws {
        let scratch = try Scratch()
        let library = try await hints(in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(library)", "isolation": "\#(isolation)"}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 10, "maxAttempts": 2, "initialBackoff": 1}"#)

        let host = try await run(Products.batchman, ["run", manifest], input: lines([("k", "1", "fail:constraint"), ("k", "2", "bad-reason")]))

        #expect(host.status == 0, "\(host.errorOutput)")
        let byId = try results(host.output)
        #expect(byId["1"]?.errorReason == "plugin:constraint")
        #expect(byId["1"]?.attempts == 1, "BM_FAILED is not retried")
        #expect(byId["2"]?.resultJSON == #"{"emitDetailedReturned":-1}"#, "a reason that is not a token is refused")
        #expect(host.errorOutput.contains("plugin:constraint=1"), "the stats line counts it by name")
    }

    @Test(arguments: ["none", "process"])
    func aRetryAfterIsAFloorUnderTheBackoff(isolation: String) async throws {
        let scratch = try Scratch()
        let library = try await hints(in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(library)", "isolation": "\#(isolation)"}}"#,
                                            defaults: #"{"frequency": 1, "maxBatchSize": 10, "maxAttempts": 3, "initialBackoff": 1, "maxBackoff": 1}"#)

        let host = try await run(Products.batchman, ["run", manifest], input: lines([("k", "1", "retry:500")]))

        #expect(host.status == 0, "\(host.errorOutput)")
        let result = try #require(try results(host.output)["1"])
        #expect(result.status == "completed")
        #expect(result.attempts == 2)
        // A lower bound only: the backoff alone (1 ms) would have retried at once.
        #expect(try seconds(from: result.submittedAt, to: result.completedAt) >= 0.5)
    }

    @Test(arguments: ["none", "process"])
    func aPluginPausesItsKeysNewBatches(isolation: String) async throws {
        let scratch = try Scratch()
        let library = try await hints(in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(library)", "isolation": "\#(isolation)"}}"#,
                                            defaults: #"{"frequency": 1, "maxBatchSize": 10, "maxAttempts": 2, "initialBackoff": 1, "maxBackoff": 1}"#)

        let host = try await run(Products.batchman, ["run", manifest], input: lines([("k", "1", "pause:600")]))

        #expect(host.status == 0, "\(host.errorOutput)")
        let result = try #require(try results(host.output)["1"])
        #expect(result.resultJSON == #""resumed""#)
        #expect(result.attempts == 2)
        #expect(try seconds(from: result.submittedAt, to: result.completedAt) >= 0.6, "the retry waited for the pause")
        #expect(host.errorOutput.contains(#"key "k": new batches paused for 0.6 seconds, as its processor asked"#), "\(host.errorOutput)")
    }

    @Test func aPluginCannotPauseAnotherEntrysKeys() async throws {
        let scratch = try Scratch()
        let library = try await hints(in: scratch)
        let manifest = try scratch.manifest(#"{"alpha": {"plugin": "\#(library)"}, "beta": {"plugin": "\#(Products.plugin("EchoPlugin"))"}}"#,
                                            defaults: #"{"frequency": 1, "maxBatchSize": 10}"#)
        let input = #"{"key":"beta","id":"0","payload":1}"# + "\n" + #"{"key":"alpha","id":"1","payload":"pause-key:beta"}"# + "\n"

        let host = try await run(Products.batchman, ["run", manifest], input: input)

        #expect(host.status == 0, "\(host.errorOutput)")
        #expect(try results(host.output)["1"]?.resultJSON == #"{"paused":-1}"#, "beta is another entry's key")
        #expect(!host.errorOutput.contains("new batches paused"))
    }

    @Test func jobsReplayedFromTheSpoolAreMarkedAsDeliveredBefore() async throws {
        let scratch = try Scratch()
        let library = try await hints(in: scratch)
        let spool = scratch.path("spool")
        let waiting = try scratch.manifest(#"{"default": {"plugin": "\#(library)"}}"#, defaults: #"{"frequency": 600000, "maxBatchSize": 100}"#)
        let first = try HostProcess(["run", waiting, "--spool", spool, "--fsync", "always"])
        first.send([#"{"key":"k","id":"1","payload":"report"}"#])
        _ = await first.waitForLog(containing: "reading jobs from standard input")
        await first.waitUntilAccepted(1)
        first.signal(SIGKILL)
        _ = await first.exitStatus()

        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(library)"}}"#, defaults: #"{"frequency": 1, "maxBatchSize": 100}"#)
        let second = try await run(Products.batchman, ["run", manifest, "--spool", spool], input: #"{"key":"k","id":"2","payload":"report"}"# + "\n")

        #expect(second.status == 0, "\(second.errorOutput)")
        let byId = try results(second.output)
        #expect(byId["1"]?.resultJSON.contains(#""redelivered":true"#) == true, "replayed from the spool")
        #expect(byId["2"]?.resultJSON.contains(#""redelivered":false"#) == true, "new input")
    }
}
