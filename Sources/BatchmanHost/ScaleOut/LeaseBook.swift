/// When another host's lease (or announcement) has gone stale, judged by this host's own
/// clock: a record whose revision has not changed for `ttl` since this host first saw that
/// revision is expired. No clocks are compared between machines.
///
/// Why this is safe: an owner renews every tick and gives its lease up by itself once
/// `ttl - tick` has passed since it *sent* its last successful renewal; whoever sees that
/// revision saw it after it was stored, so it waits at least `ttl` from a later moment. The
/// owner has stopped before anyone may take over. (So `now` must be read after the reply that
/// showed the revision, never earlier: a clock read before a slow request would start the wait
/// before the revision existed.)
struct LeaseBook {
    struct Seen: Equatable {
        var revision: UInt64
        var since: UInt64
    }

    let ttl: UInt64
    private(set) var seen: [String: Seen] = [:]

    init(ttlNanoseconds: UInt64) { ttl = ttlNanoseconds }

    /// Notes the revision a key has now (nil: no record).
    mutating func observe(_ key: String, revision: UInt64?, now: UInt64) {
        guard let revision else {
            seen.removeValue(forKey: key)
            return
        }
        if seen[key]?.revision != revision { seen[key] = Seen(revision: revision, since: now) }
    }

    /// The record has kept its revision for the whole `ttl`.
    func isExpired(_ key: String, now: UInt64) -> Bool {
        guard let record = seen[key] else { return false }
        return now >= record.since + ttl
    }

}

/// How many partitions a host should own: its fair share, rounded up.
enum FairShare {
    static func target(partitions: Int, liveHosts: Int) -> Int {
        let hosts = max(1, liveHosts)
        return (partitions + hosts - 1) / hosts
    }

    /// The order in which a host tries free partitions: from its own place among the live
    /// hosts, so that hosts starting together do not all reach for partition 0.
    static func preference(partitions: Int, hostIndex: Int, liveHosts: Int) -> [Int] {
        let start = partitions * max(0, hostIndex) / max(1, liveHosts)
        return (0..<partitions).map { ($0 + start) % partitions }
    }
}
