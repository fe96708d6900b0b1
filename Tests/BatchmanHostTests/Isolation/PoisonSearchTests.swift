@testable import BatchmanHost
import Testing

/// The search for the jobs that crash a plugin, step by step: what runs next after each crash.
@Suite struct PoisonSearchTests {
    /// Runs the search against a plugin that crashes on `poisoned` jobs as soon as a run holds
    /// one (answering nothing), and returns every run and the jobs named.
    func search(_ count: Int, poisoned: Set<Int>) -> (runs: [[Int]], crashes: Int, named: [Int]) {
        var search = PoisonSearch(count: count)
        var runs: [[Int]] = []
        var crashes = 0
        while case .run(let part) = search.next() {
            runs.append(part)
            if !poisoned.isDisjoint(with: part) {
                crashes += 1
                _ = search.crashed(unanswered: part)
            }
        }
        return (runs, crashes, search.poisoned)
    }

    @Test func aBatchThatCompletesRunsOnce() {
        var search = PoisonSearch(count: 3)
        #expect(search.next() == .run([0, 1, 2]))
        #expect(search.next() == .finished)
    }

    @Test func anEmptyBatchRunsNothing() {
        var search = PoisonSearch(count: 0)
        #expect(search.next() == .finished)
    }

    @Test func aFirstCrashRunsTheUnansweredJobsOnceMoreAndTheyMayComplete() {
        var search = PoisonSearch(count: 4)
        #expect(search.next() == .run([0, 1, 2, 3]))
        #expect(search.crashed(unanswered: [2, 3]) == nil)
        #expect(search.next() == .run([2, 3]), "jobs 0 and 1 were answered before the crash")
        #expect(search.next() == .finished, "the second run completed: the crash was not theirs")
    }

    @Test func aCrashAfterEveryJobWasAnsweredRunsNothingMore() {
        var search = PoisonSearch(count: 4)
        _ = search.next()
        #expect(search.crashed(unanswered: []) == nil)
        #expect(search.next() == .finished, "no empty batch")
    }

    @Test func aJobThatCrashesTwiceAloneIsNamed() {
        var search = PoisonSearch(count: 1)
        _ = search.next()
        #expect(search.crashed(unanswered: [0]) == nil, "one crash may be anyone's")
        #expect(search.next() == .run([0]))
        #expect(search.crashed(unanswered: [0]) == 0)
        #expect(search.next() == .finished)
    }

    @Test func aSecondCrashSplitsTheJobsInHalves() {
        var search = PoisonSearch(count: 5)
        _ = search.next()
        _ = search.crashed(unanswered: [0, 1, 2, 3, 4])
        _ = search.next()
        _ = search.crashed(unanswered: [1, 2, 3, 4])
        #expect(search.next() == .run([1, 2]))
        #expect(search.next() == .run([3, 4]))
    }

    @Test func onePoisonedJobIn1000CostsAboutTwelveCrashes() {
        let (_, crashes, named) = search(1000, poisoned: [617])
        #expect(named == [617])
        #expect(crashes == 12)
    }

    @Test func sixteenJobsThatAllCrashCostTwentyRuns() {
        let (runs, crashes, named) = search(16, poisoned: Set(0..<16))
        #expect(Set(named) == Set(0..<16))
        #expect(runs.count == 20, "the batch, once more, two halves, sixteen alone: \(runs)")
        #expect(crashes == 20)
    }

    @Test func whenEveryPartOfARoundCrashesTheRestRunOneByOne() {
        let (runs, _, named) = search(8, poisoned: [1, 6])
        #expect(Set(named) == [1, 6])
        #expect(runs.suffix(8) == (0..<8).map { [$0] }, "both halves crashed: \(runs)")
    }

    @Test func aThousandJobsThatAllCrashCostAboutOneRunEach() {
        let (runs, _, named) = search(1000, poisoned: Set(0..<1000))
        #expect(named.count == 1000)
        #expect(runs.count == 1004)
    }
}
