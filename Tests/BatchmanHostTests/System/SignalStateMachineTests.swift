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

    @Test func ignoresASignalTheProcessSentItself() {
        var machine = SignalStateMachine()
        machine.started()
        #expect(machine.received(SIGUSR1, from: .ownProcess) == .ignore, "the runtime's crash backtracer signals its own threads")
        #expect(machine.received(SIGTERM, from: .ownProcess) == .ignore)
        #expect(machine.phase == .running)
    }

    @Test(arguments: [(SignalStateMachine.Origin.direct(sender: 1), SignalStateMachine.Origin.forwarded(sender: 1)),
                      (.forwarded(sender: 1), .direct(sender: 1))])
    func takesOneStopThatCameBothWaysOnce(first: SignalStateMachine.Origin, then second: SignalStateMachine.Origin) {
        var machine = SignalStateMachine()
        machine.started()
        #expect(machine.received(SIGTERM, from: first) == .stop)
        #expect(machine.received(SIGTERM, from: second) == .ignore, "the same stop, sent to the whole group and passed on by the parent")
        #expect(machine.received(SIGTERM, from: second) == .exitAtOnce(status: 128 + SIGTERM, message: "second signal (SIGTERM): exiting now without draining"),
                "a second stop by the same way is a second stop")
    }

    @Test func doesNotPairSignalsOfDifferentSenders() {
        var machine = SignalStateMachine()
        machine.started()
        #expect(machine.received(SIGINT, from: .direct(sender: 0)) == .stop)
        #expect(machine.received(SIGINT, from: .forwarded(sender: 4242)) == .exitAtOnce(status: 130, message: "second signal (SIGINT): exiting now without draining"))
    }
}
