@testable import Batchman
import Testing

@Suite struct JobIndexTests {
    /// Slots with deliberately colliding hashes (a few distinct values), so probe runs are long
    /// and every removal shifts entries back.
    struct Table {
        var index = JobIndex()
        var hashes: [Int: Int] = [:]

        mutating func insert(_ slot: Int, hash: Int) -> Int? {
            let existing = index.insert(slot, hash: hash, matches: { $0 == slot })
            if existing == nil { hashes[slot] = hash }
            return existing
        }

        mutating func remove(_ slot: Int) {
            index.remove(slot, hash: hashes[slot]!)
            hashes[slot] = nil
        }

        func find(_ slot: Int, hash: Int) -> Int? {
            index.find(hash: hash, matches: { $0 == slot })
        }
    }

    @Test func findsEveryHeldSlotAndNoRemovedOneThroughInsertsAndRemovalsInAnyOrder() {
        var table = Table()
        var held: Set<Int> = []
        var generator = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            let slot = Int.random(in: 0..<500, using: &generator)
            if held.contains(slot) {
                table.remove(slot)
                held.remove(slot)
            } else {
                #expect(table.insert(slot, hash: slot % 7 * 1_000_003) == nil)
                held.insert(slot)
            }
            if step % 1000 == 0 {
                for slot in 0..<500 {
                    #expect((table.find(slot, hash: slot % 7 * 1_000_003) != nil) == held.contains(slot), "slot \(slot)")
                }
            }
        }
        #expect(table.index.count == held.count)
        #expect(Set(table.index.slots) == held)
    }

    @Test func reportsTheSlotAlreadyHoldingAnEqualJob() {
        var index = JobIndex()
        #expect(index.insert(3, hash: 42, matches: { _ in true }) == nil)
        #expect(index.insert(9, hash: 42, matches: { $0 == 3 }) == 3)
        #expect(index.count == 1)
    }

    @Test func comparesOnlyJobsWhoseHashBitsMatch() {
        var index = JobIndex()
        #expect(index.insert(1, hash: 7, matches: { _ in true }) == nil)
        // Same home bucket (7 and 7 + 2^20 share their low bits), other hash bits: never compared.
        var compared: [Int] = []
        #expect(index.insert(2, hash: 7 + 1 << 20, matches: { compared.append($0); return true }) == nil)
        #expect(compared.isEmpty, "a job with other hash bits is passed over without reading its record")
        #expect(index.find(hash: 7, matches: { $0 == 1 }) == 1)
        #expect(index.find(hash: 7 + 1 << 20, matches: { $0 == 2 }) == 2)
    }

    /// A key whose batches fill and empty its index in turn keeps its buckets while jobs are
    /// held (it used to shrink a halving at a time as each batch settled, and regrow with the
    /// next), and gives them back once it is empty, or nearly so after a burst.
    @Test func keepsItsBucketsWhileBatchesComeAndGoAndGivesThemBackAfterABurst() {
        var index = JobIndex()
        for slot in 0..<1000 { _ = index.insert(slot, hash: slot &* 0x9E37_79B9, matches: { _ in false }) }
        #expect(index.capacity == 2048)
        for slot in 0..<900 { index.remove(slot, hash: slot &* 0x9E37_79B9) }
        #expect(index.capacity == 2048, "100 jobs held: the next batch will fill it again")
        for slot in 900..<1000 { index.remove(slot, hash: slot &* 0x9E37_79B9) }
        #expect(index.capacity == 2, "empty: an idle key keeps two buckets")

        for slot in 0..<100_000 { _ = index.insert(slot, hash: slot &* 0x9E37_79B9, matches: { _ in false }) }
        #expect(index.capacity == 262_144)
        for slot in 0..<99_000 { index.remove(slot, hash: slot &* 0x9E37_79B9) }
        #expect(index.capacity == 8192, "shrunk to fit once a sixty-fourth full (4,095 jobs), and no further for a thousand")
    }
}
