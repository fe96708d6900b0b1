import Synchronization

/// Hands out batch ids, starting at 1: unique within one ``Batchman``, or within several that
/// share it (the host's configurations before and after a reload).
public final class BatchIdGenerator: Sendable {
    public init() {}

    let last = Atomic<UInt64>(0)

    func next() -> UInt64 {
        last.add(1, ordering: .relaxed).newValue
    }
}
