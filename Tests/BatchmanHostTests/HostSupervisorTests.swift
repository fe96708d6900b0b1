import BatchmanTesting
import Foundation
import Testing

/// `batchman run` is a thin parent over the process that does the work: a run never ends with
/// status 0 while accepted jobs have no result, and when the host dies, the parent says how.
@Suite(.timeLimit(.minutes(5)))
struct HostSupervisorTests {
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    /// Five jobs in batches of two through an in-process plugin that ends the process the way
    /// `how` says on job 3: jobs 1 and 2 are answered, 3, 4 and 5 are not.
    func crash(_ how: String, options: [String] = []) async throws -> (status: Int32, log: [String], results: [ResultLine]) {
        let scratch = try Scratch()
        // Key a's two jobs are answered first (a batch of 2); k's three are cut into one batch
        // only by the drain at the end of input, so all three are accepted when it crashes.
        let manifest = try scratch.manifest(
            #"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"crash_id": "3", "crash_how": "\#(how)"}}, "a": {"plugin": "\#(Self.testPlugin)", "maxBatchSize": 2}}"#,
            defaults: #"{"frequency": 60000, "maxBatchSize": 10}"#)
        let host = try HostProcess(["run", manifest] + options.map { $0.replacing("SCRATCH", with: scratch.url.path) })
        host.send((1...2).map { HostRunTests.job("a", "\($0)") })
        _ = try await host.results(count: 2)  // written: a crash now cannot take them
        host.send((3...5).map { HostRunTests.job("k", "\($0)") })
        let (status, results) = try await host.finish()
        return (status, host.stderr.elements, results)
    }

    @Test func aPluginThatCallsUnderscoreExitEndsTheRunWith70AndSaysWhat() async throws {
        let (status, log, results) = try await crash("_exit")

        #expect(status == 70, "not 0: three accepted jobs have no result")
        #expect(results.map(\.id) == ["1", "2"])
        #expect(log.contains { $0.contains(#"batchman: the host process exited with status 0 without finishing its run while the host was calling plugin "test" (key "k"); 3 accepted jobs got no result"#) },
                "\(log.suffix(3))")
    }

    @Test(arguments: [("segv", "signal 11 (SIGSEGV)"), ("abort", "signal 6 (SIGABRT)")])
    func aPluginThatCrashesTheHostIsNamedWithTheJobsItCost(how: String, named: String) async throws {
        let (status, log, _) = try await crash(how)

        #expect(status == 70)
        #expect(log.contains { $0.contains("the host process was terminated by \(named) while the host was calling plugin \"test\" (key \"k\"); 3 accepted jobs got no result") },
                "\(log.suffix(3))")
        #expect(log.contains { $0.contains(#"belongs in "isolation": "process""#) })
        #expect(!log.contains { $0.contains("stats: accepted=") }, "the crash reporter's own signals are not requests for statistics")
    }

    @Test func theReportSaysWhichSpoolHoldsTheUnansweredJobs() async throws {
        let (status, log, _) = try await crash("segv", options: ["--spool", "SCRATCH/spool"])

        #expect(status == 70)
        #expect(log.contains { $0.contains("3 accepted jobs got no result; the spool ") && $0.contains("/spool holds them, and the next run with --spool") },
                "\(log.suffix(2))")
    }

    /// The Swift runtime's crash handler pauses every thread before it prints the backtrace,
    /// each with the first of SIGUSR1, SIGUSR2 and SIGPROF its mask lets through (read from
    /// /proc), and waits 2 s for each that does not pause, 16 times over. The host's signal
    /// thread must keep SIGUSR1 and SIGUSR2 blocked while it waits (a sigwaitinfo unblocks them,
    /// and swallows the crash handler's signal: a crash then took 32 s to report), and let
    /// SIGPROF through.
    @Test func theSignalThreadCanBePausedByTheCrashHandlerWhileItWaits() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)"}}"#, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("k", "1")])
        _ = try await host.results(count: 1)  // running: the signal thread is in its wait
        let pid = host.hostProcessIdentifier

        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        let thread = try #require(tasks.first { (try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8)) == "batchman-signal\n" },
                                  "the host names its signal thread")
        let status = try String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") })
        let blocked = try #require(UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16))
        func isBlocked(_ signal: Int32) -> Bool { blocked & (1 << UInt64(signal - 1)) != 0 }

        #expect(isBlocked(SIGUSR1) && isBlocked(SIGUSR2), "SigBlk \(String(blocked, radix: 16)): the wait lets them through")
        #expect(!isBlocked(SIGPROF), "SigBlk \(String(blocked, radix: 16)): the crash handler cannot pause it")
        host.closeInput()
        #expect(await host.exitStatus() == 0)
    }

    @Test func aStopSentToTheWholeProcessGroupDrainsOnce() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"sleep_ms": 200}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        // The test starts it in a process group of its own (Foundation's Process does), as
        // systemd's cgroup holds a service: the signal reaches the parent and the host, and the
        // parent passes it on too.
        let host = try HostProcess(["run", manifest])
        #expect(getpgid(host.processIdentifier) == host.processIdentifier)
        host.send((1...3).map { HostRunTests.job("k", "\($0)") })
        // The three lines are in the pipe before the host starts, so the read that brings the
        // first brings all three: once it is answered, all are accepted (a stop before the
        // reader has them would rightly answer none).
        _ = try await host.results(count: 1)

        kill(-host.processIdentifier, SIGTERM)
        let status = await host.exitStatus()

        #expect(status == 0, "one stop, not two: \(host.stderr.elements.suffix(4))")
        #expect(host.stdout.elements.count == 3, "every accepted job drained")
        #expect(host.stderr.elements.filter { $0.contains("received SIGTERM") }.count == 1)
    }
}
