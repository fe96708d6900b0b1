/// A snapshot of a ``Batchman``'s counters: the whole instance and each key.
public struct BatchmanStatistics: Sendable, Hashable {
    /// Counters as given; public so that several instances' counters can be added up.
    public init(total: BatcherStatistics, perKey: [String: BatcherStatistics]) {
        self.total = total
        self.perKey = perKey
    }

    /// Every key together, refusals at submission included.
    public let total: BatcherStatistics
    /// Each key's own counters.
    public let perKey: [String: BatcherStatistics]
}
