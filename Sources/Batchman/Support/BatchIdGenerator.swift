import Synchronization

/// Hands out batch ids unique within one ``Batchman``, starting at 1.
final class BatchIdGenerator: Sendable {
    private let last = Atomic<UInt64>(0)

    func next() -> UInt64 {
        last.add(1, ordering: .relaxed).newValue
    }
}
