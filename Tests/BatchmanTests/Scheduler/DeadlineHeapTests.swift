@testable import Batchman
import Testing

@Suite struct DeadlineHeapTests {
    func at(_ seconds: Int) -> Duration { .seconds(seconds) }

    @Test func popsOnlyDueEntriesEarliestFirst() {
        var heap = DeadlineHeap<String>()
        for (name, second) in [("c", 30), ("a", 10), ("d", 40), ("b", 20)] { heap.push(name, at: at(second)) }

        var due: [String] = []
        while let name = heap.popDue(at: at(25)) { due.append(name) }

        #expect(due == ["a", "b"])
        #expect(heap.earliest == at(30))
    }

    @Test func popsEqualDeadlinesInTheOrderTheyWerePushed() {
        var heap = DeadlineHeap<Int>()
        for value in 0..<100 { heap.push(value, at: at(5)) }

        var popped: [Int] = []
        while let value = heap.popDue(at: at(5)) { popped.append(value) }

        #expect(popped == Array(0..<100))
    }

    @Test func sortsAnyOrderOfDeadlines() {
        var heap = DeadlineHeap<Int>()
        var generator = SystemRandomNumberGenerator()
        let seconds = (0..<1000).map { _ in Int.random(in: 0..<500, using: &generator) }
        for second in seconds { heap.push(second, at: at(second)) }

        var popped: [Int] = []
        while let value = heap.popDue(at: at(1000)) { popped.append(value) }

        #expect(popped == seconds.sorted())
    }
}

@Suite struct FlushSchedulerStateMachineTests {
    typealias Machine = FlushSchedulerStateMachine<String>
    func at(_ seconds: Int) -> Duration { .seconds(seconds) }

    func armedDeadline(_ action: Machine.ArmAction) -> Duration? {
        guard case .arm(let deadline, _, _) = action else { return nil }
        return deadline
    }

    func generation(_ action: Machine.ArmAction) -> UInt64? {
        guard case .arm(_, let generation, _) = action else { return nil }
        return generation
    }

    @Test func armsOnlyForAnEarlierDeadline() {
        var machine = Machine()
        #expect(armedDeadline(machine.schedule("a", at: at(60))) == at(60))
        #expect(armedDeadline(machine.schedule("b", at: at(90))) == nil)
        #expect(armedDeadline(machine.schedule("c", at: at(60))) == nil)
        #expect(armedDeadline(machine.schedule("d", at: at(30))) == at(30))
    }

    @Test func firesDueTargetsAndArmsForTheNext() {
        var machine = Machine()
        let first = generation(machine.schedule("a", at: at(10)))
        _ = machine.schedule("b", at: at(10))
        _ = machine.schedule("c", at: at(20))

        let fired = machine.timerFired(generation: first!, now: at(10))

        #expect(fired.due == ["a", "b"])
        #expect(armedDeadline(fired.next) == at(20))
    }

    @Test func ignoresAStaleTimer() {
        var machine = Machine()
        let stale = generation(machine.schedule("a", at: at(60)))
        _ = machine.schedule("b", at: at(30))

        let fired = machine.timerFired(generation: stale!, now: at(60))

        #expect(fired.due.isEmpty)
        #expect(armedDeadline(fired.next) == nil)
    }

    @Test func forgetsEverythingOnceStopped() {
        var machine = Machine()
        _ = machine.schedule("a", at: at(10))
        _ = machine.stop()

        #expect(armedDeadline(machine.schedule("b", at: at(5))) == nil)
        #expect(machine.pendingCount == 0)
    }
}
