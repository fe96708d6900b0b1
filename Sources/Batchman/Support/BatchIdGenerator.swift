import Synchronization

/// Hands out batch ids unique within one ``Batchman``, starting at 1.
@usableFromInline final class BatchIdGenerator: Sendable {
    @inlinable init() {}

    @usableFromInline let last = Atomic<UInt64>(0)

    @inlinable func next() -> UInt64 {
        last.add(1, ordering: .relaxed).newValue
    }
}
