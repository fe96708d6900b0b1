import BatchmanTesting
import Foundation
import Testing

/// Every signal whose default action would kill the host gets a deliberate behaviour, from the
/// moment the host starts.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct HostSignalTests {
    static let echo = Products.plugin("EchoPlugin")
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    func startedHost(_ scratch: Scratch, keys: String = #"{"default": {"plugin": "\#(Self.echo)"}}"#) async throws -> HostProcess {
        let manifest = try scratch.manifest(keys, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        await host.waitForLog(containing: "reading jobs from standard input")
        return host
    }

    @Test func reloadsOnSIGHUPAndLosesNoJob() async throws {
        let host = try await startedHost(try Scratch())
        host.send([HostRunTests.job("k", "1")])
        _ = try await host.results(count: 1)

        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 1: ok, nothing changed") != nil)
        host.send([HostRunTests.job("k", "2")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.map(\.id) == ["1", "2"])
        #expect(results.allSatisfy { $0.status == "completed" })
    }

    @Test(arguments: [SIGQUIT, SIGINT])
    func drainsAndExitsZeroOnAStopSignal(_ signal: Int32) async throws {
        let host = try await startedHost(try Scratch())
        host.send([HostRunTests.job("k", "1")])
        _ = try await host.results(count: 1)

        host.signal(signal)

        #expect(await host.exitStatus() == 0)
        let name = signal == SIGQUIT ? "SIGQUIT" : "SIGINT"
        #expect(host.stderr.elements.contains { $0.contains("received \(name): reading no more input, draining accepted jobs") })
        #expect(!host.stderr.elements.contains { $0.contains("crashed") })
    }

    @Test func printsStatisticsOnSIGUSR1AndPerKeyLinesOnSIGUSR2() async throws {
        let host = try await startedHost(try Scratch())
        host.send([HostRunTests.job("k", "1")])
        _ = try await host.results(count: 1)

        host.signal(SIGUSR1)
        let summary = await host.waitForLog(containing: "stats: accepted=1 completed=1")
        host.signal(SIGUSR2)
        let perKey = await host.waitForLog(containing: #"stats: key "k": accepted=1"#)
        let (status, _) = try await host.finish()

        #expect(summary != nil)
        #expect(perKey != nil)
        #expect(status == 0)
    }

    /// `check` makes every instance while starting (`run` makes them for jobs).
    @Test(arguments: ["check"])
    func exitsAtOnceOnSIGINTWhileAPluginIsStillLoading(_ command: String) async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"create_wait_file": "/nonexistent/never"}}}"#)
        let host = try HostProcess([command, manifest])
        await host.waitForLog(containing: "create is waiting for its file")

        host.signal(SIGINT)

        #expect(await host.exitStatus() == 128 + SIGINT)
        #expect(host.stderr.elements.contains { $0.contains("received SIGINT while starting: exiting (no job had been accepted)") })
    }

    @Test func catchesAPluginThatCallsExitAndNamesIt() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"mode": "exit"}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job("poison", "1")])

        #expect(await host.exitStatus() == 70)
        #expect(await host.waitForLog(containing: #"plugin "test" (key "poison") called exit() while the host was calling it"#) != nil)
    }
}
