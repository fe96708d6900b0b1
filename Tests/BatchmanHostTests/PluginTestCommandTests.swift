import Foundation
import Testing

/// `batchman plugin-test`: the real binary against a good plugin and against the test plugin's
/// deliberate defects, each reported by name.
@Suite(.timeLimit(.minutes(5)))
struct PluginTestCommandTests {
    func pluginTest(_ library: String, _ options: [String] = []) async throws -> (status: Int32, lines: [String]) {
        let result = try await run(Products.batchman, ["plugin-test", library] + options)
        return (result.status, result.output.split(separator: "\n").map(String.init))
    }

    func testPlugin(_ config: String, _ options: [String] = []) async throws -> (status: Int32, lines: [String]) {
        try await pluginTest(Products.plugin("BatchmanTestPlugin"), ["--config", config] + options)
    }

    func line(_ lines: [String], _ title: String) -> String {
        lines.first { $0.dropFirst(5).hasPrefix(title + ":") } ?? "(no line for \(title))"
    }

    @Test func passesAWellBehavedPluginWithOneLinePerCheckAndATimingLine() async throws {
        let (status, lines) = try await pluginTest(Products.plugin("EchoPlugin"))

        #expect(status == 0, "\(lines)")
        #expect(lines.count == 14, "twelve checks, the speed line and the standard output line")
        #expect(lines.filter { $0.hasPrefix("ok   ") }.count == 13, "\(lines)")
        #expect(line(lines, "descriptor").contains("\"echo\" 1.0.0, ABI 1.1"))
        #expect(line(lines, "outcomes") == "ok   outcomes: 100 synthetic jobs: 100 ok, 0 failed, 0 retry")
        #expect(line(lines, "concurrent calls").contains("4 threads x 25 batches"), "EchoPlugin sets BM_FLAG_CONCURRENT")
        #expect(line(lines, "speed").hasPrefix("time speed:") && line(lines, "speed").contains("batches/s") && line(lines, "speed").contains("ns/job"))
    }

    @Test func reportsAJobThatIsNeverEmitted() async throws {
        let (status, lines) = try await testPlugin(#"{"mode": "too_few"}"#)

        #expect(status == 1)
        #expect(line(lines, "batches of 1 to 1000 jobs").hasPrefix("FAIL"))
        #expect(line(lines, "batches of 1 to 1000 jobs").contains("batch of 10: 1 of 10 jobs not emitted (index 9)"))
        #expect(line(lines, "descriptor").hasPrefix("ok"), "other checks still pass")
    }

    @Test func reportsAJobEmittedTwice() async throws {
        let (status, lines) = try await testPlugin(#"{"mode": "duplicate"}"#)
        #expect(status == 1)
        #expect(line(lines, "empty payloads").contains("emit(index 0) a second time, refused (returned -1)"))
    }

    @Test func reportsAnIndexOutOfRange() async throws {
        let (_, lines) = try await testPlugin(#"{"mode": "shifted"}"#)
        #expect(line(lines, "attempt > 1").contains("emit(index 3) is out of range 0..<3"))
        #expect(line(lines, "attempt > 1").contains("1 of 3 jobs not emitted (index 0)"))
    }

    @Test func reportsEmitWithNullData() async throws {
        let (_, lines) = try await testPlugin(#"{"mode": "null_emit"}"#)
        #expect(line(lines, "a 1 MiB payload").contains("with NULL data and length 100"))
    }

    @Test func reportsWritesToStandardOutput() async throws {
        let (status, lines) = try await testPlugin(#"{"stdout": 1}"#)

        #expect(status == 1)
        #expect(line(lines, "standard output").hasPrefix("FAIL"))
        #expect(line(lines, "standard output").contains("chatter from printf"))
        #expect(line(lines, "batches of 1 to 1000 jobs").hasPrefix("ok"), "the jobs themselves are fine")
    }

    @Test func reportsACreateThatRefusesAndSkipsWhatNeedsAnInstance() async throws {
        let (status, lines) = try await testPlugin(#"{"refuse": "no database given"}"#)

        #expect(status == 1)
        #expect(line(lines, "create").hasPrefix("FAIL") && line(lines, "create").contains("no database given"))
        #expect(line(lines, "destroy") == "FAIL destroy: not run: the plugin made no instance")
    }

    @Test func reportsACrashByItsSignalAndGoesOnWithTheOtherChecks() async throws {
        let (status, lines) = try await testPlugin(#"{"crash_id": "0"}"#)

        #expect(status == 1)
        #expect(line(lines, "batches of 1 to 1000 jobs").contains("the plugin crashed (SIGSEGV) during this check"))
        #expect(line(lines, "destroy").hasPrefix("ok"), "a check that does not call the plugin's batch still runs")
        #expect(line(lines, "standard output").hasPrefix("ok"))
    }

    @Test func reportsAnExitCall() async throws {
        let (_, lines) = try await testPlugin(#"{"mode": "exit"}"#)
        #expect(line(lines, "10,000 levels of nesting").contains("the plugin called exit()"))
    }

    @Test func killsAHungPluginAfterTheTimeoutAndSkipsTheRest() async throws {
        // 5 s, not 1: the checks before the hang must finish within it even under
        // AddressSanitizer on a loaded machine, where 1 s once ran out in the descriptor check.
        let (status, lines) = try await testPlugin(#"{"crash_id": "0", "crash_how": "hang"}"#, ["--timeout", "5"])

        #expect(status == 1)
        #expect(line(lines, "outcomes").contains("no answer within 5.0 seconds (--timeout): the plugin hung"))
        #expect(line(lines, "batches of 1 to 1000 jobs") == "FAIL batches of 1 to 1000 jobs: not run: the plugin hung in outcomes")
        #expect(line(lines, "empty payloads") == "FAIL empty payloads: not run: the plugin hung in outcomes")
    }

    @Test func reportsAMissingLibraryAndAUsageError() async throws {
        let (status, lines) = try await pluginTest("/nonexistent/libNothing.so")
        #expect(status == 1)
        #expect(line(lines, "descriptor").contains("there is no such file"))

        let usage = try await run(Products.batchman, ["plugin-test"])
        #expect(usage.status == 64)
        #expect(usage.errorOutput.contains("plugin-test needs the plugin's library"))
    }

    @Test func refusesAFileThatIsNotAPlugin() async throws {
        let (status, lines) = try await pluginTest(Products.batchman)
        #expect(status == 1)
        #expect(line(lines, "descriptor").hasPrefix("FAIL descriptor: expected a loadable Batchman plugin"))
    }

    // MARK: - What the SQLite sink's author met (ABI 1.1's plugin-test)

    static func fixture(_ name: String) -> String { Products.packageRoot.appendingPathComponent("Tests/Fixtures/\(name)").path }

    @Test func failsAPluginThatKeepsItsEmitterAndEmitsThroughItInALaterCall() async throws {
        let scratch = try Scratch()
        let library = try await scratch.compilePlugin("stale", source: Self.fixture("stale_emitter_plugin.c"))

        let (status, lines) = try await pluginTest(library)

        #expect(status == 1)
        let lifetime = line(lines, "emitter kept past its call")
        #expect(lifetime.hasPrefix("FAIL"), "\(lines)")
        #expect(lifetime.contains("2 emit() calls were not (the first: emit() through the emitter of an earlier call"))
        #expect(line(lines, "batches of 1 to 1000 jobs").contains("emit() calls outside the running call, refused (returned -1)"))
    }

    @Test func showsHowOutcomesSplitAndFailsAPluginThatFailsEveryJob() async throws {
        let scratch = try Scratch()
        let library = try await scratch.compilePlugin("needs", source: Self.fixture("needs_name_plugin.c"))

        let (status, lines) = try await pluginTest(library)

        #expect(status == 1)
        let outcomes = line(lines, "outcomes")
        #expect(outcomes.hasPrefix("FAIL outcomes: expected some jobs to complete; none did: 100 synthetic jobs: 0 ok, 100 failed, 0 retry"))
        #expect(outcomes.contains(#"first messages: "missing field name""#))
        #expect(outcomes.contains("give your own with --jobs FILE"))
        #expect(line(lines, "batches of 1 to 1000 jobs").hasPrefix("ok"), "every job was emitted: the contract holds")
    }

    @Test func runsTheAuthorsOwnJobsFromAFile() async throws {
        let scratch = try Scratch()
        let library = try await scratch.compilePlugin("needs", source: Self.fixture("needs_name_plugin.c"))
        let jobs = try scratch.write("jobs.ndjson", #"{"key":"x","id":"a","payload":{"name":"ada"}}"# + "\n\n"
                                     + #"{"key":"x","id":"b","payload":{"age":3}}"# + "\n")

        let (status, lines) = try await pluginTest(library, ["--jobs", jobs])

        #expect(status == 0, "\(lines)")
        #expect(line(lines, "outcomes") == #"ok   outcomes: 2 jobs from \#(jobs): 1 ok, 1 failed, 0 retry; first messages: "missing field name""#)
        #expect(line(lines, "batches of 1 to 1000 jobs").contains("(payloads from \(jobs))"))
    }

    @Test func refusesAJobsFileThatIsNotJobsOrCannotBeRead() async throws {
        let scratch = try Scratch()
        let bad = try scratch.write("bad.ndjson", #"{"key":"x","id":"a","payload":1}"# + "\nnot json\n")

        let notJobs = try await run(Products.batchman, ["plugin-test", Products.plugin("EchoPlugin"), "--jobs", bad])
        let missing = try await run(Products.batchman, ["plugin-test", Products.plugin("EchoPlugin"), "--jobs", scratch.path("none.ndjson")])

        #expect(notJobs.status == 65)
        #expect(notJobs.errorOutput.contains("--jobs \(bad): line 2 is not a job"))
        #expect(missing.status == 66)
        #expect(missing.errorOutput.contains("cannot be read"))
    }

    @Test func itsHelpNamesEveryOption() async throws {
        let help = try await run(Products.batchman, ["plugin-test", "--help"])

        #expect(help.status == 0)
        for option in ["--config JSON", "--key K", "--jobs FILE", "--timeout S"] { #expect(help.output.contains(option), "\(option)") }
        #expect(help.output.contains("an emitter kept past its call"))
    }
}
