import CBatchmanSystem

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of spool records and of
/// the done ledger: it catches torn writes and flipped bits, and is the checksum iSCSI, ext4
/// and most write-ahead logs use. Computed in the C shim, with the processor's crc32
/// instruction where it has one (a table-driven loop in Swift cost a third of a spooled run).
enum CRC32C {
    /// The checksum of `bytes`, continuing from `crc` (the checksum of the bytes before them).
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        UInt32(bm_crc32c(bytes.baseAddress, UInt(bytes.count), UInt32(crc)))
    }

    static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }
}
