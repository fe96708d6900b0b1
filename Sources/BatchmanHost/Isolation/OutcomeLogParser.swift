import Batchman
import CBatchmanPlugin

/// Reads the records of a worker's outcome log (``OutcomeLog``) as the untrusted input they
/// are: one at a time, each field read once, each against the batch: an index in range and not
/// answered before, a known status, a length within what was published and within the batch's
/// `maxResultBytes`. At most one record per job is read, so the work and the memory are bounded
/// by the batch, whatever the worker published. Apart from the I/O so that it can be fuzzed
/// (`Fuzz/WorkerFuzzer.swift`).
enum OutcomeLogParser {
    static let recordHeaderSize = 20
    /// A reason token's longest (``FailureReason/isValidToken(_:)``).
    static let maxReasonBytes = 32
    /// Room a worker has past `maxResultBytes` for the short messages of jobs whose outcomes did
    /// not fit (the worker writes one per such job).
    static let messageAllowance = 256

    /// One outcome as the host read it: where its bytes are in the batch's buffer.
    struct Record: Equatable {
        let index: Int
        let status: Int32
        let bytes: Range<Int>
        /// `emit_detailed`'s reason and retry-after, checked as the collector checks them.
        var detail: OutcomeDetail? = nil
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
            let retryAfter = UInt64(field(offset + 12)), reasonSize = Int(field(offset + 16))
            guard index < count else { return .broken("it published an outcome for job \(index) of a batch of \(count)") }
            guard !answered[index] else { return .broken("it published two outcomes for job \(index)") }
            guard status == BM_OK || status == BM_FAILED || status == BM_RETRY else {
                return .broken("it published an outcome with status \(status) for job \(index)")
            }
            guard reasonSize <= maxReasonBytes, reasonSize <= length - offset - recordHeaderSize else {
                return .broken("it published a reason of \(reasonSize) bytes for job \(index)")
            }
            let reason = UnsafeRawBufferPointer(start: start + offset + recordHeaderSize, count: reasonSize)
            guard reasonSize == 0 || (FailureReason.isValidToken(reason) && status != BM_OK),
                  retryAfter == 0 || (status == BM_RETRY && retryAfter <= OutcomeDetail.maxRetryAfterMilliseconds) else {
                return .broken("it published a reason or retry-after for job \(index) that emit_detailed refuses")
            }
            guard size <= length - offset - recordHeaderSize - reasonSize else { return .broken("an outcome record runs past what it published") }
            dataBytes += size
            guard dataBytes <= maxResultBytes + count * messageAllowance else {
                return .broken("its outcomes passed the batch's maxResultBytes (\(maxResultBytes))")
            }
            let data = UnsafeRawBufferPointer(start: start + offset + recordHeaderSize + reasonSize, count: size)
            let range = bytes.count..<(bytes.count + size)
            bytes.append(contentsOf: data)
            let detail = reasonSize == 0 && retryAfter == 0 ? nil
                : OutcomeDetail(reason: String(decoding: reason, as: UTF8.self), retryAfterMilliseconds: retryAfter)
            records.append(Record(index: index, status: status, bytes: range, detail: detail))
            answered[index] = true
            offset += recordHeaderSize + reasonSize + size
        }
        return .records(records, bytes: bytes)
    }
}
