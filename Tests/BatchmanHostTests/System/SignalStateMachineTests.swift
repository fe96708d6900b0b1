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

    @Test func ignoresHangupWithAWarningInEveryPhase() {
        var machine = SignalStateMachine()
        guard case .warn(let message) = machine.received(SIGHUP) else {
            Issue.record("no warning while starting")
            return
        }
        #expect(message.hasPrefix("received SIGHUP:"))
        machine.started()
        guard case .warn = machine.received(SIGHUP) else {
            Issue.record("no warning while running")
            return
        }
        #expect(machine.phase == .running, "SIGHUP does not stop the host")
    }

    @Test func printsStatisticsOnUserSignalsOnceRunning() {
        var machine = SignalStateMachine()
        #expect(machine.received(SIGUSR1) == .ignore, "nothing to report while starting")
        machine.started()
        #expect(machine.received(SIGUSR1) == .printStatistics(perKey: false))
        #expect(machine.received(SIGUSR2) == .printStatistics(perKey: true))
    }
}
