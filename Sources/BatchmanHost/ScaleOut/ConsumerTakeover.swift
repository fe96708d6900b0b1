import BatchmanNATS

/// What taking a partition over does with the partition's consumers it finds (names end in the
/// lease revision they were made under): the new consumer starts after the latest one's ack
/// floor, and every old one is deleted, so that a host that lost the lease can neither fetch nor
/// acknowledge there again. Pure; ``PartitionCoordinator`` carries it out.
struct ConsumerTakeover: Equatable {
    /// An old consumer that answered the list.
    struct Found: Equatable {
        var name: String
        /// The stream sequence through which it had every job acknowledged.
        var acknowledgedThrough: UInt64
        /// The last stream sequence it delivered.
        var delivered: UInt64
    }

    /// The stream sequence the new consumer starts at.
    var start: UInt64
    /// The last sequence the old consumer delivered: jobs up to there may have reached a plugin.
    var redeliveredThrough: UInt64
    /// The latest consumer did not answer and the wait is over: what it delivered is unknown,
    /// so every job stored by now may have reached a plugin (the caller reads the stream's last
    /// sequence for ``redeliveredThrough``).
    var latestUnknown = false
    /// The old consumers to delete, answered or not.
    var deletions: [String]

    /// The takeover of the consumers named `prefix` + revision among `answered` and `missing`
    /// (a clustered server lists a consumer whose replicas have no leader as missing, without
    /// its state). If the latest is missing its ack floor is unknown, and starting after an
    /// older one would run every job since again: the takeover waits (throws, to be tried at
    /// the next tick), unless `stopWaiting` (it has not answered for long: a partition nobody
    /// can take is worse than jobs run twice). A missing older one is deleted with the rest:
    /// left out, it lingered on the server for good (seen in the 3-node test after a node was
    /// killed).
    static func plan(prefix: String, answered: [Found], missing: [String], stopWaiting: Bool = false) throws(NATSError) -> ConsumerTakeover {
        func revision(_ name: String) -> UInt64 { UInt64(name.dropFirst(prefix.count)) ?? 0 }
        let old = answered.filter { $0.name.hasPrefix(prefix) }
        let unanswered = missing.filter { $0.hasPrefix(prefix) }
        let latest = old.max { revision($0.name) < revision($1.name) }
        let newest = unanswered.max { revision($0) < revision($1) }
        let latestIsMissing = newest.map { revision($0) > latest.map { revision($0.name) } ?? 0 } ?? false
        if latestIsMissing, !stopWaiting, let newest {
            throw NATSError.timeout("\(newest), the partition's last consumer, did not answer (its replicas have no leader yet)")
        }
        let floor = latest?.acknowledgedThrough ?? 0
        return ConsumerTakeover(start: floor + 1, redeliveredThrough: latest?.delivered ?? 0, latestUnknown: latestIsMissing,
                                deletions: old.map(\.name) + unanswered)
    }
}
