@testable import BatchmanHost
import Testing

/// The decisions behind shared instances, worker pools and `--max-processes`, without threads.
@Suite struct InstanceStateMachineTests {
    // MARK: - ProcessBudget

    @Test func theBudgetGrantsUpToItsLimitThenQueuesAndPassesFreedPlacesOnInOrder() {
        var budget = ProcessBudget.StateMachine(limit: 2)
        let got1 = budget.acquire(1)
        #expect(got1 == .granted)
        let got2 = budget.acquire(2)
        #expect(got2 == .granted)
        let got3 = budget.acquire(3)
        #expect(got3 == .wait)
        let got4 = budget.acquire(4)
        #expect(got4 == .wait)
        let got5 = budget.release()
        #expect(got5 == 3, "the first waiter gets the freed place")
        #expect(budget.held == 2)
        let got6 = budget.release()
        #expect(got6 == 4)
        let got7 = budget.release()
        #expect(got7 == nil)
        #expect(budget.held == 1)
    }

    @Test func aNewcomerNeverOvertakesAKeyThatWaits() {
        var budget = ProcessBudget.StateMachine(limit: 1)
        let got8 = budget.acquire(1)
        #expect(got8 == .granted)
        let got9 = budget.acquire(2)
        #expect(got9 == .wait)
        let got10 = budget.release()
        #expect(got10 == 2)
        let got11 = budget.acquire(3)
        #expect(got11 == .wait, "the place went to 2, not to 3")
    }

    @Test func anOverdrawnPlaceIsGivenBackNotPassedOn() {
        var budget = ProcessBudget.StateMachine(limit: 1)
        let first = budget.acquire(1)
        #expect(first == .granted)
        let waiter = budget.acquire(2)
        #expect(waiter == .wait)
        budget.overdraw()
        #expect(budget.held == 2, "a proof's worker, past the bound")
        let overdrawn = budget.release()
        #expect(overdrawn == nil, "back under the bound, nobody gets it")
        let freed = budget.release()
        #expect(freed == 2, "the place within the bound goes to the waiter")
    }

    @Test func theBoundFitsTheLimitOnOpenFiles() {
        #expect(ProcessBudget.limit(asked: 256, descriptorLimit: 1_048_576) == 256)
        #expect(ProcessBudget.limit(asked: 256, descriptorLimit: 1024) == 240)
        #expect(ProcessBudget.limit(asked: 256, descriptorLimit: 128) == 16)
        #expect(ProcessBudget.limit(asked: 256, descriptorLimit: 10) == 1, "one worker at least: it waits, never fails")
        #expect(ProcessBudget.limit(asked: 4, descriptorLimit: 1024) == 4)
    }

    // MARK: - InstanceCell

    @Test func aCellMakesItsInstanceOnceForEveryBatchThatWaits() {
        var cell = InstanceCell.StateMachine()
        let got12 = cell.use(1, now: 0)
        #expect(got12 == .make)
        let got13 = cell.use(2, now: 0)
        #expect(got13 == .wait)
        let got14 = cell.made(.success(()), now: 5)
        #expect(got14 == .run([1, 2]))
        let got15 = cell.use(3, now: 6)
        #expect(got15 == .run)
        #expect(cell.idleSince == nil, "three batches run")
        cell.ended(now: 7)
        cell.ended(now: 8)
        cell.ended(now: 9)
        #expect(cell.idleSince == 9)
    }

    @Test func aRefusalFailsTheBatchesOfTheNextSecondThenIsAskedAgain() {
        var cell = InstanceCell.StateMachine()
        let got16 = cell.use(1, now: 0)
        #expect(got16 == .make)
        let error = PluginLoadError(code: .createRefused, plugin: "p", file: "/p.so", key: "k", detail: "no backend")
        let got17 = cell.made(.failure(error), now: 10)
        #expect(got17 == .fail([1], error.description))
        let got18 = cell.use(2, now: 10 + InstanceCell.StateMachine.refusalHeld - 1)
        #expect(got18 == .fail(error.description))
        let got19 = cell.use(3, now: 10 + InstanceCell.StateMachine.refusalHeld)
        #expect(got19 == .make)
    }

    @Test func onlyAnIdleCellRetiresAndARetiredCellTakesNoBatch() {
        var cell = InstanceCell.StateMachine()
        _ = cell.use(1, now: 0)
        _ = cell.made(.success(()), now: 0)
        let got20 = cell.retire(idleSince: 100)
        #expect(!got20, "busy")
        cell.ended(now: 50)
        let got21 = cell.retire(idleSince: 49)
        #expect(!got21, "idle since 50, not since 49")
        let got22 = cell.retire(idleSince: 50)
        #expect(got22)
        let got23 = cell.use(2, now: 60)
        #expect(got23 == .retired)
    }

    @Test func aFirstJobWarmsTheCellAndItsBatchThenRuns() {
        var cell = InstanceCell.StateMachine()
        let got24 = cell.warm()
        #expect(got24)
        let got25 = cell.warm()
        #expect(!got25, "already being made")
        let got26 = cell.use(1, now: 0)
        #expect(got26 == .wait)
        let got27 = cell.made(.success(()), now: 1)
        #expect(got27 == .run([1]))
    }

    @Test func anInstanceMadeAfterItsEntryClosedIsDiscarded() {
        var cell = InstanceCell.StateMachine()
        let got28 = cell.use(1, now: 0)
        #expect(got28 == .make)
        let got29 = cell.close()
        #expect(!got29, "nothing made yet")
        let got30 = cell.made(.success(()), now: 1)
        #expect(got30 == .discard([1]))
        let got31 = cell.use(2, now: 2)
        #expect(got31 == .closed)
    }

    // MARK: - WorkerPoolInstances

    @Test func aPoolStartsAWorkerPerWaitingBatchUpToItsSize() {
        var pool = WorkerPoolInstances.StateMachine(size: 2)
        let got32 = pool.submit(1)
        #expect(got32 == .start(member: 0))
        let got33 = pool.submit(2)
        #expect(got33 == .start(member: 1))
        let got34 = pool.submit(3)
        #expect(got34 == .queued, "two workers at most")
        let got35 = pool.started(0, ok: true)
        #expect(got35 == .run(token: 1, member: 0))
        let got36 = pool.started(1, ok: true)
        #expect(got36 == .run(token: 2, member: 1))
        let got37 = pool.ended(0)
        #expect(got37 == .run(token: 3, member: 0))
        let got38 = pool.ended(1)
        #expect(got38 == .none)
        let got39 = pool.submit(4)
        #expect(got39 == .run(member: 1), "an idle worker takes it at once")
    }

    @Test func batchesFailOnlyWhenNoWorkerCanStartAndNoneRuns() {
        var pool = WorkerPoolInstances.StateMachine(size: 2)
        let got40 = pool.submit(1)
        #expect(got40 == .start(member: 0))
        let got41 = pool.submit(2)
        #expect(got41 == .start(member: 1))
        let got42 = pool.started(0, ok: false)
        #expect(got42 == .none, "member 1 may still start")
        let got43 = pool.started(1, ok: false)
        #expect(got43 == .fail([1, 2]))
        let got44 = pool.submit(3)
        #expect(got44 == .start(member: 0), "the next batch tries again")
    }

    @Test func closingAPoolReturnsWhatWaits() {
        var pool = WorkerPoolInstances.StateMachine(size: 1)
        let got45 = pool.submit(1)
        #expect(got45 == .start(member: 0))
        let got46 = pool.submit(2)
        #expect(got46 == .queued)
        let got47 = pool.close()
        #expect(got47 == [1, 2])
        let got48 = pool.submit(3)
        #expect(got48 == .closed)
    }
}
