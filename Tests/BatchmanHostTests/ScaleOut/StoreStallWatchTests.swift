import Testing

@testable import BatchmanHost

/// When the host says its results have stopped being stored, and that they are stored again.
@Suite struct StoreStallWatchTests {
    static let second: UInt64 = 1_000_000_000

    @Test func saysNothingWhileResultsAreStoredWithinTheThreshold() {
        var watch = StoreStallWatch()
        #expect(watch.observe(count: 0, oldest: nil, now: 100 * Self.second) == .none)
        #expect(watch.observe(count: 500, oldest: 29 * Self.second, now: 101 * Self.second) == .none)
        #expect(watch.phase == .storing)
    }

    @Test func saysAStallOnceItPassesTheThresholdThenEveryMinuteWhileItLasts() {
        var watch = StoreStallWatch()
        #expect(watch.observe(count: 3214, oldest: 30 * Self.second, now: 100 * Self.second) == .stalled(count: 3214, seconds: 30))
        #expect(watch.phase == .stalled(since: 70 * Self.second, reportedAt: 100 * Self.second))
        #expect(watch.observe(count: 3300, oldest: 89 * Self.second, now: 159 * Self.second) == .none, "said again a minute later, not each tick")
        #expect(watch.observe(count: 3400, oldest: 90 * Self.second, now: 160 * Self.second) == .stalled(count: 3400, seconds: 90))
    }

    @Test func saysWhenResultsAreStoredAgainAndHowLongTheStallLasted() {
        var watch = StoreStallWatch()
        _ = watch.observe(count: 10, oldest: 40 * Self.second, now: 100 * Self.second)
        #expect(watch.observe(count: 0, oldest: nil, now: 130 * Self.second) == .storing(afterSeconds: 70))
        #expect(watch.phase == .storing)
        #expect(watch.observe(count: 0, oldest: nil, now: 131 * Self.second) == .none)
    }
}
