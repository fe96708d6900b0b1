/// The intake's index of held jobs: slot numbers in an open-addressing table with linear
/// probing, found by each job's identity hash.
///
/// Why not a `Dictionary<JobIdentity, Int>`: a job is hashed once, when it is submitted, and
/// taking it out hashes nothing and compares no strings (it looks for its slot number), where a
/// dictionary hashes the identity again. A bucket is 8 bytes: the slot and 32 bits of the
/// job's hash, so that a probe passes over other jobs, and a removal shifts entries back, without
/// reading their slot records (by perf, those reads were most of the host reader's time in the
/// index: records are scattered, buckets are not). The hash is ``IdentityHash``'s, seeded at
/// random per process, so ids crafted to collide in one run do not in the next.
struct JobIndex {
    /// Per bucket: the low 32 bits of the job's hash in the high half, slot + 1 in the low half;
    /// 0 is empty. At most half full.
    private var buckets: [UInt64] = []
    private(set) var count = 0

    private var mask: Int { buckets.count - 1 }

    private static func bucket(slot: Int, hash: UInt32) -> UInt64 { UInt64(hash) << 32 | UInt64(slot + 1) }
    private static func slot(in bucket: UInt64) -> Int { Int(bucket & 0xFFFF_FFFF) - 1 }
    private static func hash(in bucket: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: bucket >> 32) }

    /// The slot whose job has `hash` and for which `matches` holds.
    /// - Parameter matches: whether the job in a slot (with the same hash bits) is the one looked for.
    func find(hash: Int, matches: (Int) -> Bool) -> Int? {
        guard !buckets.isEmpty else { return nil }
        let hash32 = UInt32(truncatingIfNeeded: hash)
        var position = Int(hash32) & mask
        while buckets[position] != 0 {
            if Self.hash(in: buckets[position]) == hash32, matches(Self.slot(in: buckets[position])) { return Self.slot(in: buckets[position]) }
            position = (position + 1) & mask
        }
        return nil
    }

    /// Adds `slot` for a job with `hash`, unless a job that `matches` is indexed already.
    /// - Returns: that job's slot, or nil once `slot` is added.
    mutating func insert(_ slot: Int, hash: Int, matches: (Int) -> Bool) -> Int? {
        // Starts at 2 buckets: an idle key holding one job should cost little (W5).
        if (count + 1) * 2 > buckets.count { resize(to: max(2, buckets.count * 2)) }
        let hash32 = UInt32(truncatingIfNeeded: hash)
        var position = Int(hash32) & mask
        while buckets[position] != 0 {
            if Self.hash(in: buckets[position]) == hash32, matches(Self.slot(in: buckets[position])) { return Self.slot(in: buckets[position]) }
            position = (position + 1) & mask
        }
        buckets[position] = Self.bucket(slot: slot, hash: hash32)
        count += 1
        return nil
    }

    /// Removes `slot`, whose job has `hash`. Later entries of its probe run move back into the
    /// hole (backward-shift deletion), so lookups never need tombstones.
    mutating func remove(_ slot: Int, hash: Int) {
        let entry = Self.bucket(slot: slot, hash: UInt32(truncatingIfNeeded: hash))
        var hole = Int(UInt32(truncatingIfNeeded: hash)) & mask
        while buckets[hole] != entry {
            precondition(buckets[hole] != 0, "slot \(slot) is not in the index")
            hole = (hole + 1) & mask
        }
        var next = hole
        while true {
            next = (next + 1) & mask
            guard buckets[next] != 0 else { break }
            let home = Int(Self.hash(in: buckets[next])) & mask
            // The entry at `next` may move to `hole` unless its home lies cyclically in (hole, next].
            let staysPut = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if !staysPut {
                buckets[hole] = buckets[next]
                hole = next
            }
        }
        buckets[hole] = 0
        count -= 1
        // Give memory back after a burst: once the index is empty, or a sixty-fourth full.
        // Shrinking as soon as it was an eighth full, a halving at a time, made a key whose
        // batches fill and empty the index shrink and regrow it with every batch (a few percent
        // of the host reader's time, by perf).
        if buckets.count > 8, count == 0 || count * 64 < buckets.count { resize(to: Self.capacity(for: count)) }
    }

    /// The buckets the index has (a power of two, twice its count at least).
    var capacity: Int { buckets.count }

    /// The fewest buckets that hold `count` jobs at most half full.
    private static func capacity(for count: Int) -> Int {
        var capacity = 2
        while capacity < count * 2 { capacity *= 2 }
        return capacity
    }

    /// Every indexed slot, in no particular order.
    var slots: [Int] { buckets.compactMap { $0 == 0 ? nil : Self.slot(in: $0) } }

    private mutating func resize(to capacity: Int) {
        let old = buckets
        buckets = [UInt64](repeating: 0, count: capacity)
        for entry in old where entry != 0 {
            var position = Int(Self.hash(in: entry)) & mask
            while buckets[position] != 0 { position = (position + 1) & mask }
            buckets[position] = entry
        }
    }
}
