import Testing

@testable import Batchman

/// The flight engine's 8-byte `Duration?`.
@Suite struct PackedTimeTests {
    @Test func holdsNoneUntilSetAndNoneAgainWhenCleared() {
        var time = PackedTime()
        #expect(time.wrappedValue == nil)
        time.wrappedValue = .milliseconds(5)
        #expect(time.wrappedValue == .milliseconds(5))
        time.wrappedValue = nil
        #expect(time.wrappedValue == nil)
    }

    @Test(arguments: [Duration.zero, .nanoseconds(1), .nanoseconds(-1), .seconds(86_400 * 365), .milliseconds(-250)])
    func keepsWholeNanosecondsExactly(_ duration: Duration) {
        var time = PackedTime()
        time.wrappedValue = duration
        #expect(time.wrappedValue == duration)
    }

    /// Past what 64 bits of nanoseconds hold, a time is clamped, never taken for none.
    @Test func clampsWhatItCannotHoldAndNeverTurnsItIntoNone() {
        var time = PackedTime()
        time.wrappedValue = .seconds(Int64.max)
        #expect(time.wrappedValue == .nanoseconds(Int64.max))
        time.wrappedValue = .seconds(Int64.min)
        #expect(time.wrappedValue == .nanoseconds(Int64.min + 1))
    }
}
