import Synchronization

/// Calls `onZero` once, when ``tick()`` has been called `count` times, from whichever thread
/// ticks last.
@usableFromInline final class Countdown: Sendable {
    let remaining: Atomic<Int>
    let onZero: @Sendable () -> Void

    @usableFromInline init(_ count: Int, onZero: @escaping @Sendable () -> Void) {
        remaining = Atomic(count)
        self.onZero = onZero
    }

    @usableFromInline func tick() {
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { onZero() }
    }
}
