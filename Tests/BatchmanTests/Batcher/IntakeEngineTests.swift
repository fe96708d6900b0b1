@testable import Batchman
import Testing

/// The producers' half of a batcher, transition by transition: each event's action compared with `==`.
@Suite struct IntakeEngineTests {
    typealias Engine = IntakeEngine
    typealias Effects = IntakeEngine.Effects

    func engine(_ config: BatcherConfig) -> Engine {
        Engine(policy: KeyPolicy(config: config, batchIds: BatchIdGenerator(), jitter: { $0 }))
    }

    func identity(_ id: String) -> JobIdentity { JobIdentity(key: "k", id: id) }

    /// Submits `id` and returns its slot and the effects of its acceptance.
    func accept(_ id: String, size: Int = 1, into engine: inout Engine, at now: Duration = .zero,
                sourceLocation: SourceLocation = #_sourceLocation) -> (slot: Int, effects: Effects?) {
        switch engine.submit(identity(id), size: size) {
        case .accepted(let slot):
            return (slot, nil)
        case .acceptedToJoin(let slot):
            return (slot, engine.join(slot, size: size, now: { now }))
        default:
            Issue.record("job \(id) was not accepted", sourceLocation: sourceLocation)
            return (-1, nil)
        }
    }

    /// Submits `id` and returns what the engine said.
    func submit(_ id: String, size: Int = 1, into engine: inout Engine) -> Engine.SubmitAction {
        engine.submit(identity(id), size: size)
    }

    @Test func theFirstJobOfAWindowSetsItsDeadlineAndTheNextOnesDoNothing() {
        var engine = engine(BatcherConfig(frequency: .seconds(5), maxBatchSize: 4))

        let first = accept("1", into: &engine, at: .seconds(2))
        let second = accept("2", into: &engine, at: .seconds(3))

        #expect(first.effects == Effects(windowDeadline: .seconds(7), window: 1))
        #expect(second.effects == nil, "no effects to copy around: it joined the open window at once")
        #expect(submit("3", size: 1, into: &engine) == .accepted(slot: 2))
        #expect(first.slot != second.slot)
    }

    @Test func theJobThatFillsTheWindowCutsItWithEveryJobInOrder() {
        var engine = engine(BatcherConfig(maxBatchSize: 2))
        let first = accept("1", into: &engine)

        let second = accept("2", into: &engine, at: .seconds(4))

        #expect(second.effects == Effects(cutAfter: .init(id: 1, reason: .size, slots: [first.slot, second.slot])))
        #expect(engine.isOpenWindowEmpty)
        #expect(accept("3", into: &engine).effects?.window == 2, "the next job opens the next window")
    }

    @Test func refusesADuplicateWhileTheJobIsHeldAndTakesItAgainOnceReleased() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        let first = accept("1", into: &engine)
        _ = accept("2", into: &engine)

        #expect(submit("1", size: 1, into: &engine) == .refused(.duplicate), "held, though in a cut batch")

        engine.release([first.slot])
        #expect(engine.held == 1, "a released job is held no more")
        #expect(engine.lookUp(identity("1")) == nil)
        let again = accept("1", into: &engine)
        #expect(again.slot == first.slot, "a freed slot is used again")
    }

    @Test func saysFullAtMaxPendingAndRefusesATooLargePayload() {
        var engine = engine(BatcherConfig(maxBatchBytes: 10, maxPending: 1))
        let held = accept("1", into: &engine)

        #expect(submit("2", size: 1, into: &engine) == .full)
        #expect(submit("3", size: 11, into: &engine) == .refused(.tooLarge(size: 11, limit: 10)))
        #expect(submit("1", size: 1, into: &engine) == .refused(.duplicate), "a full key still names a duplicate")

        engine.release([held.slot])
        #expect(submit("2", size: 1, into: &engine) != .full, "released room is room again")
    }

    @Test func cutsByBytesBeforeTheJobThatWouldOverflow() {
        var engine = engine(BatcherConfig(frequency: .seconds(1), maxBatchSize: 10, maxBatchBytes: 10))
        let first = accept("1", size: 6, into: &engine)

        let second = accept("2", size: 6, into: &engine, at: .seconds(3))

        #expect(second.effects == Effects(cutBefore: .init(id: 1, reason: .bytes, slots: [first.slot]), windowDeadline: .seconds(4), window: 2),
                "the second job opens the next window")
    }

    @Test func aStaleWindowDeadlineDoesNothingAndACurrentOneCutsByTime() {
        var engine = engine(BatcherConfig(maxBatchSize: 1))
        _ = accept("1", into: &engine)  // window 1 cut by size at once
        #expect(engine.deadlineReached(window: 1) == nil)

        var timed = self.engine(BatcherConfig(maxBatchSize: 5))
        let job = accept("1", into: &timed)
        #expect(timed.deadlineReached(window: 1) == .init(id: 1, reason: .time, slots: [job.slot]))
        #expect(timed.deadlineReached(window: 1) == nil, "cut once")
    }

    @Test func drainCutsTheOpenWindowRefusesNewJobsAndCutsARejoiningJobAtOnce() {
        var engine = engine(BatcherConfig(maxBatchSize: 5))
        let first = accept("1", into: &engine)
        let second = accept("2", into: &engine)

        #expect(engine.drain() == .init(id: 1, reason: .shutdown, slots: [first.slot, second.slot]))
        #expect(engine.phase == .draining)
        #expect(submit("3", size: 1, into: &engine) == .refused(.shuttingDown))
        #expect(engine.drain() == nil, "nothing left to cut")

        // A job retried after the drain began goes again at once, not after a window.
        let rejoined = engine.join(first.slot, size: 1, now: { .zero })
        #expect(rejoined == Effects(cutAfter: .init(id: 2, reason: .shutdown, slots: [first.slot])))
    }

    @Test func aRetriedJobRejoinsTheOpenWindowBehindNewerJobs() {
        var engine = engine(BatcherConfig(frequency: .seconds(1), maxBatchSize: 3))
        let retried = accept("1", into: &engine)
        _ = accept("2", into: &engine)
        _ = accept("3", into: &engine)
        // Window 1 was cut with all three; job 1 is retried later.
        let rejoined = engine.join(retried.slot, size: 1, now: { .seconds(9) })
        #expect(rejoined == Effects(windowDeadline: .seconds(10), window: 2))
        let joining = accept("4", into: &engine)
        #expect(joining.effects == nil)
        #expect(engine.openPosition(of: retried.slot) == 0 && engine.openPosition(of: joining.slot) == 1)
    }

    /// An idle key keeps no storage for jobs: once every job held is released, the engine lets
    /// go of its slots and index, and the next job starts again at slot 0.
    @Test func aKeyThatHoldsNoJobLetsGoOfItsStorage() {
        var engine = engine(BatcherConfig(maxBatchSize: 2))
        let first = accept("1", into: &engine)
        let second = accept("2", into: &engine)
        #expect(second.slot == 1)

        engine.release([first.slot, second.slot])

        let again = accept("3", into: &engine)
        #expect(again.slot == 0, "storage starts afresh")
        #expect(engine.lookUp(identity("3")) == 0)
        #expect(engine.lookUp(identity("1")) == nil)
        #expect(submit("3", size: 1, into: &engine) == .refused(.duplicate), "the fresh index still finds held jobs")
    }

    @Test func abandonGivesBackTheOpenWindowsJobsAndRefusesNewOnes() {
        var engine = engine(BatcherConfig(maxBatchSize: 5))
        let job = accept("1", into: &engine)

        #expect(engine.abandon() == [job.slot])
        #expect(engine.held == 0)
        #expect(submit("2", size: 1, into: &engine) == .refused(.shuttingDown))
    }

    @Test func countsWhatItAcceptsAndWhereAJobWaits() {
        var engine = engine(BatcherConfig(maxBatchSize: 3))
        let first = accept("1", into: &engine)
        let second = accept("2", into: &engine)
        _ = submit("1", size: 1, into: &engine)

        #expect(engine.accepted == 2)
        #expect(engine.held == 2)
        #expect(engine.openPosition(of: second.slot) == 1)
        #expect(engine.openPosition(of: first.slot) == 0)
    }
}
