/// The engine's index of held jobs: slot numbers in an open-addressing table with linear
/// probing, found by each job's identity hash.
///
/// Why not a `Dictionary<JobIdentity, Int>`: a job is hashed once, when it is submitted, and its
/// slot keeps the hash, so removing a finished job hashes nothing and compares no strings (it
/// looks for its slot number), where a dictionary hashes the identity again for every result.
/// A bucket is 4 bytes, not a copy of the identity. The hash is ``IdentityHash``'s, seeded at
/// random per process, so ids crafted to collide in one run do not in the next.
struct JobIndex {
    /// Slot + 1 per bucket; 0 is empty. At most half full.
    private var buckets: [UInt32] = []
    private(set) var count = 0

    private var mask: Int { buckets.count - 1 }

    /// The slot whose job has `hash` and for which `matches` holds.
    /// - Parameters:
    ///   - hashOf: the hash kept for a slot.
    ///   - matches: whether the job in a slot is the one looked for.
    func find(hash: Int, hashOf: (Int) -> Int, matches: (Int) -> Bool) -> Int? {
        guard !buckets.isEmpty else { return nil }
        var bucket = hash & mask
        while buckets[bucket] != 0 {
            let slot = Int(buckets[bucket]) - 1
            if hashOf(slot) == hash, matches(slot) { return slot }
            bucket = (bucket + 1) & mask
        }
        return nil
    }

    /// Adds `slot` for a job with `hash`, unless a job that `matches` is indexed already.
    /// - Returns: that job's slot, or nil once `slot` is added.
    mutating func insert(_ slot: Int, hash: Int, hashOf: (Int) -> Int, matches: (Int) -> Bool) -> Int? {
        // Starts at 2 buckets: an idle key holding one job should cost little (W5).
        if (count + 1) * 2 > buckets.count { resize(to: max(2, buckets.count * 2), hashOf: hashOf) }
        var bucket = hash & mask
        while buckets[bucket] != 0 {
            let existing = Int(buckets[bucket]) - 1
            if hashOf(existing) == hash, matches(existing) { return existing }
            bucket = (bucket + 1) & mask
        }
        buckets[bucket] = UInt32(slot + 1)
        count += 1
        return nil
    }

    /// Removes `slot`, whose job has `hash`. Later entries of its probe run move back into the
    /// hole (backward-shift deletion), so lookups never need tombstones.
    mutating func remove(_ slot: Int, hash: Int, hashOf: (Int) -> Int) {
        var hole = hash & mask
        while Int(buckets[hole]) != slot + 1 {
            precondition(buckets[hole] != 0, "slot \(slot) is not in the index")
            hole = (hole + 1) & mask
        }
        var next = hole
        while true {
            next = (next + 1) & mask
            guard buckets[next] != 0 else { break }
            let home = hashOf(Int(buckets[next]) - 1) & mask
            // The entry at `next` may move to `hole` unless its home lies cyclically in (hole, next].
            let staysPut = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if !staysPut {
                buckets[hole] = buckets[next]
                hole = next
            }
        }
        buckets[hole] = 0
        count -= 1
        // Give memory back after a burst.
        if buckets.count > 8, count * 8 < buckets.count { resize(to: buckets.count / 2, hashOf: hashOf) }
    }

    /// Every indexed slot, in no particular order.
    var slots: [Int] { buckets.compactMap { $0 == 0 ? nil : Int($0) - 1 } }

    private mutating func resize(to capacity: Int, hashOf: (Int) -> Int) {
        let old = buckets
        buckets = [UInt32](repeating: 0, count: capacity)
        for entry in old where entry != 0 {
            var bucket = hashOf(Int(entry) - 1) & mask
            while buckets[bucket] != 0 { bucket = (bucket + 1) & mask }
            buckets[bucket] = entry
        }
    }
}
