import Glibc

/// Which of a spool's records are done (their result line was written): every sequence up to
/// `watermark`, and those in `done` above it. Also how far the input (a file) was read, and
/// which file that was.
///
/// On disk (`DIR/ledger`), little-endian: the magic `BMLEDGR2`, `crc: UInt32` (CRC-32C of the
/// rest), `count: UInt32`, `watermark: UInt64`, `inputOffset: UInt64`, the input's identity
/// (``SpoolInput``: `device: UInt64`, `inode: UInt64`, `fingerprintLength: UInt32`,
/// `fingerprint: UInt32`; all 0 for none), then `count` sequences above the watermark. It is
/// replaced whole (write a temporary file, fsync, rename, fsync the folder), never edited in
/// place, and always before a segment it covers is deleted. A `BMLEDGR1` ledger (no identity)
/// of an earlier version is read too.
struct SpoolLedger: Equatable, Sendable {
    static let magic: [UInt8] = Array("BMLEDGR2".utf8)
    static let version1Magic: [UInt8] = Array("BMLEDGR1".utf8)

    private(set) var watermark: UInt64 = 0
    private(set) var done: Set<UInt64> = []
    /// The furthest the input (a file) was read and spooled: where a restart resumes.
    var inputOffset: UInt64 = 0
    /// The file `inputOffset` is in; nil for standard input, or a ledger of an earlier version.
    var input: SpoolInput?

    func isDone(_ sequence: UInt64) -> Bool { sequence <= watermark || done.contains(sequence) }

    mutating func markDone(_ sequence: UInt64) {
        guard sequence > watermark else { return }
        done.insert(sequence)
        while done.remove(watermark + 1) != nil { watermark += 1 }
    }

    /// Everything up to `sequence` is done or absent (a new spool, or records lost with a
    /// damaged ledger that were replayed): moves the watermark there.
    mutating func advance(to sequence: UInt64) {
        guard sequence > watermark else { return }
        watermark = sequence
        done = done.filter { $0 > sequence }
        while done.remove(watermark + 1) != nil { watermark += 1 }
    }

    func encoded() -> [UInt8] {
        var body: [UInt8] = []
        SpoolRecord.appendLittleEndian(UInt32(done.count), to: &body)
        SpoolRecord.appendLittleEndian(watermark, to: &body)
        SpoolRecord.appendLittleEndian(inputOffset, to: &body)
        SpoolRecord.appendLittleEndian(input?.device ?? 0, to: &body)
        SpoolRecord.appendLittleEndian(input?.inode ?? 0, to: &body)
        SpoolRecord.appendLittleEndian(input?.fingerprintLength ?? 0, to: &body)
        SpoolRecord.appendLittleEndian(input?.fingerprint ?? 0, to: &body)
        for sequence in done.sorted() { SpoolRecord.appendLittleEndian(sequence, to: &body) }
        var output = Self.magic
        SpoolRecord.appendLittleEndian(CRC32C.checksum(body), to: &output)
        return output + body
    }

    /// The ledger in `bytes`, or nil if they are not a whole, intact ledger.
    static func decode(_ bytes: [UInt8]) -> SpoolLedger? {
        guard bytes.count >= 32 else { return nil }
        let magic = Array(bytes[0..<8])
        guard magic == Self.magic || magic == version1Magic else { return nil }
        let header = magic == Self.magic ? 56 : 32
        return bytes.withUnsafeBytes { raw -> SpoolLedger? in
            let crc = SpoolRecord.readLittleEndian(UInt32.self, raw, 8)
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[12...])) == crc else { return nil }
            let count = Int(SpoolRecord.readLittleEndian(UInt32.self, raw, 12))
            guard bytes.count == header + count * 8 else { return nil }
            var ledger = SpoolLedger()
            ledger.watermark = SpoolRecord.readLittleEndian(UInt64.self, raw, 16)
            ledger.inputOffset = SpoolRecord.readLittleEndian(UInt64.self, raw, 24)
            if header == 56 {
                let input = SpoolInput(device: SpoolRecord.readLittleEndian(UInt64.self, raw, 32), inode: SpoolRecord.readLittleEndian(UInt64.self, raw, 40),
                                       fingerprintLength: SpoolRecord.readLittleEndian(UInt32.self, raw, 48),
                                       fingerprint: SpoolRecord.readLittleEndian(UInt32.self, raw, 52))
                ledger.input = input.inode == 0 && input.device == 0 ? nil : input
            }
            for index in 0..<count { ledger.done.insert(SpoolRecord.readLittleEndian(UInt64.self, raw, header + index * 8)) }
            return ledger
        }
    }
}
