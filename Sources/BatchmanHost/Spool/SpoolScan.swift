import Glibc

/// What is in a spool folder, read without changing it: what opening a spool repairs, and what
/// `batchman spool check` reports.
struct SpoolScan {
    struct Cut {
        let path: String
        let offset: Int
        let bytes: Int
        /// In the newest segment: a write the crash cut short (expected after a power cut).
        let isTail: Bool
    }

    struct Damage {
        let path: String
        let offset: Int
        let bytes: [UInt8]
        /// The record's length could not be believed: everything after it is lost too.
        let isRestOfSegment: Bool
    }

    /// One segment file as found: the highest sequence in it (0 if none), its size, and
    /// whether it is a symbolic link (never read or written: a spool's files are its own).
    struct SegmentFile {
        let path: String
        var lastSequence: UInt64 = 0
        var bytes = 0
        var isSymbolicLink = false
    }

    /// The ledger, if it is there and intact.
    var ledger: SpoolLedger?
    var ledgerIsDamaged = false
    var segments: [String] = []
    var files: [SegmentFile] = []
    /// Every intact record, by sequence (a record in two segments, after a crash during
    /// recovery, counts once).
    var records: [UInt64: SpoolRecord] = [:]
    var highestSequence: UInt64 = 0
    var inputOffset: UInt64 = 0
    var cuts: [Cut] = []
    var damaged: [Damage] = []
    var bytes = 0

    init(directory: String) {
        switch FileIO.readAll("\(directory)/ledger", noFollow: true) {
        case .success(let bytes):
            ledger = SpoolLedger.decode(bytes)
            ledgerIsDamaged = ledger == nil
        case .failure(let error):
            ledgerIsDamaged = error.rawValue == ELOOP  // a symbolic link is no ledger of ours
        }
        segments = SpoolFiles.segments(in: directory)
        for (index, path) in segments.enumerated() {
            var file = SegmentFile(path: path)
            defer { files.append(file) }
            let read = FileIO.readAll(path, noFollow: true)
            if case .failure(let error) = read, error.rawValue == ELOOP { file.isSymbolicLink = true }
            guard case .success(let bytes) = read else { continue }
            file.bytes = bytes.count
            self.bytes += bytes.count
            var offset = 0
            scan: while offset < bytes.count {
                switch bytes.withUnsafeBytes({ SpoolRecord.decode($0, at: offset) }) {
                case .record(let record, let next):
                    highestSequence = max(highestSequence, record.sequence)
                    file.lastSequence = max(file.lastSequence, record.sequence)
                    inputOffset = max(inputOffset, record.inputEnd)
                    records[record.sequence] = record
                    offset = next
                case .truncated:
                    cuts.append(Cut(path: path, offset: offset, bytes: bytes.count - offset, isTail: index == segments.count - 1))
                    break scan
                case .corrupt(let next):
                    damaged.append(Damage(path: path, offset: offset, bytes: Array(bytes[offset..<(next ?? bytes.count)]), isRestOfSegment: next == nil))
                    guard let next else { break scan }
                    offset = next
                }
            }
        }
    }

    /// Records not done by the ledger (all of them without an intact ledger).
    var pending: Int {
        guard let ledger else { return records.count }
        return records.keys.count { !ledger.isDone($0) }
    }
}
