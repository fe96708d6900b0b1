import Synchronization

/// Calls `onZero` once, when ``tick()`` has been called `count` times, from whichever thread
/// ticks last.
@usableFromInline final class Countdown: Sendable {
    @usableFromInline let remaining: Atomic<Int>
    @usableFromInline let onZero: @Sendable () -> Void

    @inlinable init(_ count: Int, onZero: @escaping @Sendable () -> Void) {
        remaining = Atomic(count)
        self.onZero = onZero
    }

    @inlinable func tick() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { onZero() }
    }
}
