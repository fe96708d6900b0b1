#if canImport(Glibc)
import Glibc
#endif

/// A string compared and hashed by its UTF-8 bytes.
///
/// Swift's `String` equality is canonical equivalence: "é" (U+00E9) and "e" + U+0301 are equal
/// strings. Ids and keys are names, not text: two of them are the same only if their bytes are,
/// so job identities and the batcher map use this instead.
/// Shared with the host (its map of plugin instances per key), hence `package`.
@usableFromInline package struct ExactString: Hashable, Sendable {
    @usableFromInline package let value: String

    @inlinable package init(_ value: String) {
        self.value = value
    }

    @inlinable package static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.value.hasSameBytes(as: rhs.value)
    }

    @inlinable package func hash(into hasher: inout Hasher) {
        value.hashBytes(into: &hasher)
    }
}

extension String {
    /// Whether the two strings have the same UTF-8 bytes (not merely canonically equivalent).
    @inlinable func hasSameBytes(as other: String) -> Bool {
        if hasSameRepresentation(as: other) { return true }
        let (left, right) = (utf8, other.utf8)
        guard left.count == right.count else { return false }
        // Native strings are contiguous UTF-8: compare the buffers, not byte by byte through
        // the views' indices (this runs for every submit, in the duplicate check).
        let compared = left.withContiguousStorageIfAvailable { leftBytes in
            right.withContiguousStorageIfAvailable { rightBytes in
                leftBytes.count == 0 || memcmp(leftBytes.baseAddress!, rightBytes.baseAddress!, leftBytes.count) == 0
            }
        }
        return (compared ?? nil) ?? left.elementsEqual(right)
    }

    /// Whether the two strings are the same two words: the same small string (held inline, up to
    /// 15 bytes), or the same storage. Either way the same bytes, found without reading them:
    /// the common case of a key or an id compared with a copy of itself, as when a processor's
    /// outcome names its job. False says nothing: two copies of a long string in different
    /// storage have the same bytes and different words.
    @inlinable func hasSameRepresentation(as other: String) -> Bool {
        unsafeBitCast(self, to: (UInt64, UInt64).self) == unsafeBitCast(other, to: (UInt64, UInt64).self)
    }

    /// Feeds the string's UTF-8 bytes to `hasher`.
    @inlinable func hashBytes(into hasher: inout Hasher) {
        let hashed: Void? = utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        if hashed == nil {
            for byte in utf8 { hasher.combine(byte) }
        }
    }
}
