@testable import BatchmanHost
import Glibc
import Testing

/// What each signal does in each phase of the host's life, transition by transition.
@Suite struct SignalStateMachineTests {
    @Test func exitsAtOnceOnAStopSignalWhileStarting() {
        var machine = SignalStateMachine()
        #expect(machine.received(SIGINT) == .exitAtOnce(status: 130, message: "received SIGINT while starting: exiting (no job had been accepted)"))
    }

    @Test func drainsOnTheFirstStopSignalAndExitsOnTheSecond() {
        var machine = SignalStateMachine()
        machine.started()

        #expect(machine.received(SIGQUIT) == .stop)
        #expect(machine.phase == .stopping)
        #expect(machine.received(SIGTERM) == .exitAtOnce(status: 128 + SIGTERM, message: "second signal (SIGTERM): exiting now without draining"))
    }

    @Test func reloadsOnHangupOnlyWhileRunning() {
        var machine = SignalStateMachine()
        #expect(machine.received(SIGHUP) == .warn("received SIGHUP while starting: ignored (the configuration on disk is being loaded now)"))
        machine.started()
        #expect(machine.received(SIGHUP) == .reload)
        #expect(machine.phase == .running, "SIGHUP does not stop the host")
        _ = machine.received(SIGTERM)
        #expect(machine.received(SIGHUP) == .warn("received SIGHUP while draining: ignored (the host is stopping)"))
    }

    @Test func printsStatisticsOnUserSignalsOnceRunning() {
        var machine = SignalStateMachine()
        #expect(machine.received(SIGUSR1) == .ignore, "nothing to report while starting")
        machine.started()
        #expect(machine.received(SIGUSR1) == .printStatistics(perKey: false))
        #expect(machine.received(SIGUSR2) == .printStatistics(perKey: true))
    }
}
