import Testing

@testable import Batchman

/// The flight engine's 8-byte `Duration?`.
@Suite struct PackedTimeTests {
    @Test func holdsNoneUntilSetAndNoneAgainWhenCleared() {
        var time = PackedTime()
        #expect(time.value == nil)
        time.value = .milliseconds(5)
        #expect(time.value == .milliseconds(5))
        time.value = nil
        #expect(time.value == nil)
    }

    @Test(arguments: [Duration.zero, .nanoseconds(1), .nanoseconds(-1), .seconds(86_400 * 365), .milliseconds(-250)])
    func keepsWholeNanosecondsExactly(_ duration: Duration) {
        var time = PackedTime()
        time.value = duration
        #expect(time.value == duration)
    }

    /// Past what 64 bits of nanoseconds hold, a time is clamped, never taken for none.
    @Test func clampsWhatItCannotHoldAndNeverTurnsItIntoNone() {
        var time = PackedTime()
        time.value = .seconds(Int64.max)
        #expect(time.value == .nanoseconds(Int64.max))
        time.value = .seconds(Int64.min)
        #expect(time.value == .nanoseconds(Int64.min + 1))
    }
}
