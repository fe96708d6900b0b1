/// A snapshot of a ``Batchman``'s counters: the whole instance and each key.
public struct BatchmanStatistics: Sendable, Hashable {
    @inlinable init(total: BatcherStatistics, perKey: [String: BatcherStatistics]) {
        self.total = total
        self.perKey = perKey
    }

    /// Every key together, refusals at submission included.
    public let total: BatcherStatistics
    /// Each key's own counters.
    public let perKey: [String: BatcherStatistics]
}
