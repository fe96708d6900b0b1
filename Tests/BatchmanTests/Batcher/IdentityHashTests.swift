@testable import Batchman
import Testing

/// The duplicate index's hash: the same bytes hash alike however the string holds them, and
/// every byte, the length and the scope count.
@Suite struct IdentityHashTests {
    func hash(_ id: String, scope: UInt32 = 0) -> Int {
        IdentityHash.hash(of: JobIdentity(key: "k", id: id, scope: scope))
    }

    @Test func theSameBytesHashAlikeInASmallAndInAHeapString() {
        for length in 0..<40 {
            let text = String((0..<length).map { Character(UnicodeScalar(UInt8(97 + $0 % 26))) })
            var onTheHeap = String()
            onTheHeap.reserveCapacity(64)  // a native string with its own storage, however short
            onTheHeap += text
            #expect(hash(text) == hash(onTheHeap), "length \(length)")
        }
    }

    @Test func everyByteTheLengthAndTheScopeChangeTheHash() {
        var seen = Set<Int>()
        var inputs = 0
        for length in 0..<40 {
            let base = [UInt8](repeating: 120, count: length)
            seen.insert(hash(String(decoding: base, as: UTF8.self)))
            inputs += 1
            for position in 0..<length {
                var changed = base
                changed[position] = 121
                seen.insert(hash(String(decoding: changed, as: UTF8.self)))
                inputs += 1
            }
        }
        seen.insert(hash("x", scope: 1))
        seen.insert(hash("x", scope: 2))
        inputs += 2
        #expect(seen.count == inputs, "no two of these inputs collide")
    }

    @Test func canonicallyEquivalentIdsHashByTheirBytes() {
        // "é" as one scalar and as e + U+0301: equal Strings, different ids (see ExactString).
        #expect(hash("\u{E9}") != hash("e\u{301}"))
    }
}
