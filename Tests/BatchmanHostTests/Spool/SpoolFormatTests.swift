@testable import BatchmanHost
import Testing

@Suite struct SpoolFormatTests {
    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum(Array("6789".utf8), continuing: CRC32C.checksum(Array("12345".utf8))) == 0xE306_9283)
    }

    @Test func aRecordRoundTripsAndAnyFlippedBitOrMissingByteIsCaught() {
        let record = SpoolRecord(sequence: 42, inputEnd: 1234, lineNumber: 7, line: Array(#"{"key":"k","id":"1","payload":{}}"#.utf8))
        var bytes: [UInt8] = []
        record.encode(into: &bytes)
        #expect(bytes.withUnsafeBytes { SpoolRecord.decode($0, at: 0) } == .record(record, next: bytes.count))

        for position in bytes.indices {
            var flipped = bytes
            flipped[position] ^= 0x10
            let decoded = flipped.withUnsafeBytes { SpoolRecord.decode($0, at: 0) }
            #expect(decoded != .record(record, next: bytes.count), "a flip at byte \(position) went unnoticed")
            if case .record = decoded { Issue.record("a flip at byte \(position) decoded as a record") }
        }
        for length in 0..<bytes.count {
            #expect(Array(bytes[..<length]).withUnsafeBytes { SpoolRecord.decode($0, at: 0) } == .truncated)
        }
    }

    @Test func theLedgerMovesItsWatermarkOverContiguousDoneSequencesAndRoundTrips() {
        var ledger = SpoolLedger()
        for sequence: UInt64 in [2, 3, 5] { ledger.markDone(sequence) }
        #expect(ledger.watermark == 0 && ledger.done == [2, 3, 5])
        ledger.markDone(1)
        #expect(ledger.watermark == 3 && ledger.done == [5])
        #expect(ledger.isDone(2) && !ledger.isDone(4) && ledger.isDone(5))
        ledger.inputOffset = 99

        #expect(SpoolLedger.decode(ledger.encoded()) == ledger)
        var damaged = ledger.encoded()
        damaged[damaged.count - 1] ^= 1
        #expect(SpoolLedger.decode(damaged) == nil)
        #expect(SpoolLedger.decode(Array(ledger.encoded().dropLast())) == nil)
    }

    @Test func theLedgerCarriesTheInputsIdentityAndAnEarlierLedgerIsStillRead() {
        var ledger = SpoolLedger()
        ledger.markDone(1)
        ledger.inputOffset = 4096
        ledger.input = SpoolInput(device: 7, inode: 42, fingerprintLength: 4096, fingerprint: 0xDEAD_BEEF)
        #expect(SpoolLedger.decode(ledger.encoded()) == ledger)

        // BMLEDGR1: magic, crc, count, watermark, inputOffset, sequences; no identity.
        var body: [UInt8] = []
        SpoolRecord.appendLittleEndian(UInt32(1), to: &body)
        SpoolRecord.appendLittleEndian(UInt64(5), to: &body)
        SpoolRecord.appendLittleEndian(UInt64(99), to: &body)
        SpoolRecord.appendLittleEndian(UInt64(7), to: &body)
        var old = Array("BMLEDGR1".utf8)
        SpoolRecord.appendLittleEndian(CRC32C.checksum(body), to: &old)
        let decoded = SpoolLedger.decode(old + body)
        #expect(decoded?.watermark == 5)
        #expect(decoded?.inputOffset == 99)
        #expect(decoded?.isDone(7) == true)
        #expect(decoded?.input == nil)
    }
}
