@testable import BatchmanHost
import Testing

/// Who writes a client's results, what waits, and when the connection closes, without threads.
@Suite struct ConnectionStateMachineTests {
    func bytes(_ count: Int) -> [UInt8] { [UInt8](repeating: UInt8(ascii: "r"), count: count) }

    /// The machine in a box: `#expect` cannot take a mutating call on a value.
    @dynamicMemberLookup
    final class Machine {
        var state: ConnectionStateMachine
        init(maxBacklogBytes: Int) { state = ConnectionStateMachine(maxBacklogBytes: maxBacklogBytes) }
        subscript<Value>(dynamicMember path: KeyPath<ConnectionStateMachine, Value>) -> Value { state[keyPath: path] }
        func accepted(_ count: Int) { state.accepted(count) }
        func deliver(_ lines: [UInt8], count: Int, charge: Int = 0) -> ConnectionStateMachine.DeliverAction {
            state.deliver(lines, count: count, charge: charge)
        }
        func takeReleasedCharge() -> Int { state.takeReleasedCharge() }
        func wrote(unwritten: ArraySlice<UInt8>, failed: Bool) -> ConnectionStateMachine.WroteAction { state.wrote(unwritten: unwritten, failed: failed) }
        func writable() -> [UInt8]? { state.writable() }
        func inputEnded() -> Bool { state.inputEnded() }
        func clientLeft() -> Bool { state.clientLeft() }
    }

    @Test func theFirstResultsAreWrittenAtOnceAndLaterOnesWaitForTheWriter() {
        let machine = Machine(maxBacklogBytes: 100)
        machine.accepted(3)

        #expect(machine.deliver(bytes(10), count: 1) == .write(bytes(10)))
        #expect(machine.deliver(bytes(5), count: 1) == .queued, "one thread writes at a time")
        #expect(machine.deliver(bytes(5), count: 1) == .queued)
        #expect(machine.wrote(unwritten: [], failed: false) == .write(bytes(10)), "the writer takes what arrived meanwhile")
        #expect(machine.wrote(unwritten: [], failed: false) == .done)
        #expect(machine.phase == .open(.open, .idle))
        #expect(machine.outstanding == 0)
    }

    @Test func aFullSocketLeavesTheRestToTheLoopAndAFullBacklogPausesReading() {
        let machine = Machine(maxBacklogBytes: 100)
        machine.accepted(2)
        #expect(machine.deliver(bytes(80), count: 1) == .write(bytes(80)))

        #expect(machine.wrote(unwritten: bytes(30)[...], failed: false) == .waitForWritable)
        #expect(machine.wantsWritable)
        #expect(machine.deliver(bytes(80), count: 1) == .queued)
        #expect(!machine.wantsInput, "110 bytes wait: past the bound, this client's lines wait")

        #expect(machine.writable() == bytes(110))
        #expect(machine.writable() == nil, "the writer holds them")
        #expect(machine.wrote(unwritten: [], failed: false) == .resumeReading)
        #expect(machine.wantsInput)
    }

    @Test func aClientThatShutItsSideIsClosedOnceEveryResultIsWritten() {
        let machine = Machine(maxBacklogBytes: 100)
        machine.accepted(2)
        #expect(!machine.inputEnded(), "two results are owed")
        #expect(machine.deliver(bytes(10), count: 1) == .write(bytes(10)))
        #expect(machine.wrote(unwritten: [], failed: false) == .done)
        #expect(machine.deliver(bytes(10), count: 1) == .write(bytes(10)))
        #expect(machine.wrote(unwritten: [], failed: false) == .close)
        #expect(machine.isClosed)
        #expect(machine.dropped == 0)
    }

    @Test func anIdleClientThatShutItsSideClosesAtOnce() {
        let machine = Machine(maxBacklogBytes: 100)
        #expect(machine.inputEnded())
        #expect(machine.isClosed)
    }

    @Test func resultsForAClientThatLeftAreDroppedAndCounted() {
        let machine = Machine(maxBacklogBytes: 100)
        machine.accepted(4)
        #expect(machine.deliver(bytes(10), count: 1) == .write(bytes(10)))
        #expect(machine.deliver(bytes(10), count: 2) == .queued)

        #expect(!machine.clientLeft(), "a thread still writes: it closes the connection when it is done")
        #expect(machine.phase == .leaving)
        #expect(machine.wrote(unwritten: bytes(10)[...], failed: false) == .close)
        #expect(machine.isClosed)
        #expect(machine.dropped == 3, "the two queued and the one whose write did not finish")
        #expect(machine.deliver(bytes(10), count: 1) == .orphaned)
        #expect(!machine.clientLeft())
    }

    @Test func aResultKeepsItsJobsChargeUntilItIsWrittenOrDropped() {
        let machine = Machine(maxBacklogBytes: 100)
        machine.accepted(3)
        #expect(machine.deliver(bytes(10), count: 1, charge: 600) == .write(bytes(10)))
        #expect(machine.deliver(bytes(10), count: 1, charge: 700) == .queued)
        #expect(machine.takeReleasedCharge() == 0, "nothing is written yet")

        #expect(machine.wrote(unwritten: bytes(4)[...], failed: false) == .waitForWritable)
        #expect(machine.takeReleasedCharge() == 0, "a partly written result still holds its charge")
        #expect(machine.writable() == bytes(14))
        #expect(machine.wrote(unwritten: [], failed: false) == .done)
        #expect(machine.takeReleasedCharge() == 1300)

        #expect(machine.deliver(bytes(10), count: 1, charge: 500) == .write(bytes(10)))
        #expect(!machine.clientLeft())
        #expect(machine.wrote(unwritten: bytes(10)[...], failed: false) == .close)
        #expect(machine.takeReleasedCharge() == 500, "dropped: the charge goes back too")
        #expect(machine.deliver(bytes(10), count: 1, charge: 800) == .orphaned)
        #expect(machine.takeReleasedCharge() == 800)
    }

    @Test func aFailedWriteClosesTheConnectionAndDropsWhatWaits() {
        let machine = Machine(maxBacklogBytes: 100)
        machine.accepted(3)
        #expect(machine.deliver(bytes(10), count: 2) == .write(bytes(10)))
        #expect(machine.deliver(bytes(10), count: 1) == .queued)

        #expect(machine.wrote(unwritten: bytes(10)[...], failed: true) == .close)
        #expect(machine.isClosed)
        #expect(machine.clientIsGone)
        #expect(machine.dropped == 3)
    }
}
