import CBatchmanPlugin

/// Reads the records of a worker's outcome log (``OutcomeLog``) as the untrusted input they
/// are: one at a time, each field read once, each against the batch: an index in range and not
/// answered before, a known status, a length within what was published and within the batch's
/// `maxResultBytes`. At most one record per job is read, so the work and the memory are bounded
/// by the batch, whatever the worker published. Apart from the I/O so that it can be fuzzed
/// (`Fuzz/WorkerFuzzer.swift`).
enum OutcomeLogParser {
    static let recordHeaderSize = 12
    /// Room a worker has past `maxResultBytes` for the short messages of jobs whose outcomes did
    /// not fit (the worker writes one per such job).
    static let messageAllowance = 256

    /// One outcome as the host read it: where its bytes are in the batch's buffer.
    struct Record: Equatable {
        let index: Int
        let status: Int32
        let bytes: Range<Int>
    }

    /// What the host found in the log.
    enum Contents: Equatable {
        /// Every record published, checked; `bytes` holds their data.
        case records([Record], bytes: [UInt8])
        /// The worker published something no honest worker writes: why.
        case broken(String)
    }

    /// Checks and copies the records in `length` bytes at `start`.
    static func parse(_ start: UnsafeRawPointer, length: Int, count: Int, maxResultBytes: Int) -> Contents {
        var records: [Record] = []
        var bytes: [UInt8] = []
        var answered = [Bool](repeating: false, count: count)
        var offset = 0
        var dataBytes = 0
        func field(_ at: Int) -> UInt32 { UInt32(littleEndian: start.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        while offset < length {
            guard records.count < count else { return .broken("it published more outcomes than the batch has jobs (\(count))") }
            guard length - offset >= recordHeaderSize else { return .broken("it published part of an outcome record") }
            let index = Int(field(offset)), status = Int32(bitPattern: field(offset + 4)), size = Int(field(offset + 8))
            guard index < count else { return .broken("it published an outcome for job \(index) of a batch of \(count)") }
            guard !answered[index] else { return .broken("it published two outcomes for job \(index)") }
            guard status == BM_OK || status == BM_FAILED || status == BM_RETRY else {
                return .broken("it published an outcome with status \(status) for job \(index)")
            }
            guard size <= length - offset - recordHeaderSize else { return .broken("an outcome record runs past what it published") }
            dataBytes += size
            guard dataBytes <= maxResultBytes + count * messageAllowance else {
                return .broken("its outcomes passed the batch's maxResultBytes (\(maxResultBytes))")
            }
            let data = UnsafeRawBufferPointer(start: start + offset + recordHeaderSize, count: size)
            let range = bytes.count..<(bytes.count + size)
            bytes.append(contentsOf: data)
            records.append(Record(index: index, status: status, bytes: range))
            answered[index] = true
            offset += recordHeaderSize + size
        }
        return .records(records, bytes: bytes)
    }
}
