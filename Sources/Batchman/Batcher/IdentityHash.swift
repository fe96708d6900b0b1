/// The duplicate index's hash of a job's identity: its id's bytes and its scope, folded with a
/// seed drawn once per process.
///
/// Why not `Hasher`: SipHash-1-3 took about 280 instructions a submit (callgrind), more than
/// the rest of the intake together. This reads the id 16 bytes at a time and folds them with
/// 64-bit multiplies whose 128-bit products are folded in half (high xor low), the construction
/// of wyhash and of Go's map hash. The seed is random per process, so ids made to collide in one
/// process do not collide in another; it is not a cryptographic hash, and the index does not
/// need one: it stays at most half full, and an id is compared byte for byte before it counts
/// as a duplicate. The key is not hashed: a batcher's keys rarely differ (see `JobIdentity`).
enum IdentityHash {
    /// Drawn from the system's generator on first use.
    static let seed: (UInt64, UInt64) = (UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max) | 1)

    /// The hash of `identity` (its id and scope).
    static func hash(of identity: JobIdentity) -> Int {
        var id = identity.id
        return id.withUTF8 { hash(UnsafeRawBufferPointer($0), scope: identity.scope) }
    }

    static func hash(_ bytes: UnsafeRawBufferPointer, scope: UInt32) -> Int {
        let count = bytes.count
        var state = seed.0 ^ (UInt64(scope) &* 0x9E37_79B9_7F4A_7C15)
        var first: UInt64 = 0
        var last: UInt64 = 0
        if count <= 16 {
            // Two loads that overlap when the id is shorter than 16 bytes; its length is mixed
            // in below, so ids that read alike but differ in length still differ.
            if count >= 8 {
                first = bytes.loadUnaligned(as: UInt64.self)
                last = bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            } else if count >= 4 {
                first = UInt64(bytes.loadUnaligned(as: UInt32.self))
                last = UInt64(bytes.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self))
            } else if count > 0 {
                first = UInt64(bytes[0]) << 16 | UInt64(bytes[count >> 1]) << 8 | UInt64(bytes[count - 1])
            }
        } else {
            var offset = 0
            while count - offset > 16 {
                state = fold(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) ^ seed.1,
                             bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self) ^ state)
                offset += 16
            }
            first = bytes.loadUnaligned(fromByteOffset: count - 16, as: UInt64.self)
            last = bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        }
        return Int(truncatingIfNeeded: fold(seed.1 ^ UInt64(count), fold(first ^ seed.1, last ^ state)))
    }

    /// The 128-bit product of `left` and `right`, folded to 64 bits.
    static func fold(_ left: UInt64, _ right: UInt64) -> UInt64 {
        let product = left.multipliedFullWidth(by: right)
        return product.high ^ product.low
    }
}
