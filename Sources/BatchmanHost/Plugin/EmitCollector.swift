import Batchman
import CBatchmanPlugin

/// Receives one batch's `emit` calls: validates each, and copies its bytes into one buffer (or
/// hands them to `forward`, in a worker process), within the batch's `maxResultBytes`.
final class EmitCollector {
    /// Takes each accepted outcome as it is emitted, instead of the collector keeping its bytes
    /// (a worker process writes them into its outcome log); false refuses the emit.
    typealias Forward = (_ index: Int, _ status: Int32, _ data: UnsafeRawBufferPointer, _ detail: OutcomeDetail?) -> Bool

    // Written on every emit, only by the thread inside the plugin's call (EmitterSlot refuses
    // an emit from any other): unchecked exclusivity, so that each access does not go through
    // the runtime's dynamic access tracking (a few dozen instructions, by perf).
    @exclusivity(unchecked) private var statuses: [Int32]
    @exclusivity(unchecked) private var ranges: [Range<Int>]
    /// By index, for the few outcomes emitted with a detail: the common path keeps no array.
    @exclusivity(unchecked) private var details: [Int: OutcomeDetail] = [:]
    @exclusivity(unchecked) private var bytes: [UInt8] = []
    private let forward: Forward?
    /// Outcome bytes the batch may still take (`maxResultBytes`).
    @exclusivity(unchecked) private var room: Int
    let maxResultBytes: Int
    static let notEmitted: Int32 = -1
    /// The job's outcome did not fit in `maxResultBytes`: it fails, with ``tooLargeMessage(_:_:)``.
    static let tooLarge: Int32 = -2

    /// Why `emit` calls were refused, the first few: what `batchman plugin-test` reports.
    private(set) var refusals: [String] = []
    private static let refusalsKept = 8

    init(count: Int, maxResultBytes: Int = KeySettings.defaultMaxResultBytes, forward: Forward? = nil) {
        statuses = Array(repeating: Self.notEmitted, count: count)
        ranges = Array(repeating: 0..<0, count: count)
        self.forward = forward
        self.maxResultBytes = maxResultBytes
        room = maxResultBytes
    }

    /// Whether the job at `index` was emitted with more bytes than the batch had room for.
    func wasTooLarge(_ index: Int) -> Bool { statuses[index] == Self.tooLarge }

    /// 0 if the outcome was taken, -1 if the call breaks the contract (an index out of range or
    /// already answered, an unknown status, NULL data with a non-zero length) or the outcome
    /// does not fit in the batch's `maxResultBytes` (then the job fails, saying so).
    func emit(index: Int, status: Int32, data: UnsafeRawPointer?, length: Int) -> Int32 {
        emit(index: index, status: status, data: data, length: length, detail: nil)
    }

    /// `emit_detailed` (ABI 1.1): `emit` with a reason token and a retry-after, each refused
    /// (-1) where it does not belong: a reason that is not a token or comes with BM_OK, a
    /// retry-after with another status than BM_RETRY.
    func emitDetailed(index: Int, status: Int32, data: UnsafeRawPointer?, length: Int, reason: UnsafeRawBufferPointer,
                      retryAfterMilliseconds: UInt64) -> Int32 {
        if !reason.isEmpty, !FailureReason.isValidToken(reason) {
            let shown = PluginHostServices.oneLine(UnsafeRawBufferPointer(rebasing: reason.prefix(40)))
            refuse("emit_detailed(index \(index)) with reason \"\(shown)\": not a token of 1 to 32 bytes of A-Z a-z 0-9 _ - .")
            return -1
        }
        if !reason.isEmpty, status == BM_OK {
            refuse("emit_detailed(index \(index)) with a reason and BM_OK: a reason names a failure")
            return -1
        }
        if retryAfterMilliseconds > 0, status != BM_RETRY {
            refuse("emit_detailed(index \(index)) with retry_after_ms \(retryAfterMilliseconds) and status \(status): only BM_RETRY is retried")
            return -1
        }
        let detail = reason.isEmpty && retryAfterMilliseconds == 0 ? nil
            : OutcomeDetail(reason: String(decoding: reason, as: UTF8.self),
                     retryAfterMilliseconds: min(retryAfterMilliseconds, OutcomeDetail.maxRetryAfterMilliseconds))
        return emit(index: index, status: status, data: data, length: length, detail: detail)
    }

    /// Takes one outcome, with its detail (already checked) if any.
    func emit(index: Int, status: Int32, data: UnsafeRawPointer?, length: Int, detail: OutcomeDetail?) -> Int32 {
        guard index >= 0, index < statuses.count, statuses[index] == Self.notEmitted,
              status == BM_OK || status == BM_FAILED || status == BM_RETRY,
              data != nil || length == 0, length >= 0 else {
            refuse(Self.describeRefusal(index, status, data, length, statuses))
            return -1
        }
        guard length <= room else {
            statuses[index] = Self.tooLarge
            ranges[index] = 0..<length
            refuse("emit(index \(index)) of \(length) bytes: past the batch's maxResultBytes (\(maxResultBytes))")
            return -1
        }
        let outcome = UnsafeRawBufferPointer(start: data, count: length)
        if let forward {
            guard forward(index, status, outcome, detail) else {
                refuse("emit(index \(index)) of \(length) bytes: the worker's outcome log could not grow")
                return -1
            }
        } else {
            let start = bytes.count
            bytes.append(contentsOf: outcome)
            ranges[index] = start..<bytes.count
        }
        room -= length
        statuses[index] = status
        if let detail { details[index] = detail }
        return 0
    }

    private func refuse(_ reason: String) {
        if refusals.count < Self.refusalsKept { refusals.append(reason) }
    }

    private static func describeRefusal(_ index: Int, _ status: Int32, _ data: UnsafeRawPointer?, _ length: Int, _ statuses: [Int32]) -> String {
        if index < 0 || index >= statuses.count { return "emit(index \(index)) is out of range 0..<\(statuses.count)" }
        if statuses[index] != notEmitted { return "emit(index \(index)) a second time" }
        if status != BM_OK && status != BM_FAILED && status != BM_RETRY { return "emit(index \(index)) with status \(status), not BM_OK, BM_FAILED or BM_RETRY" }
        if data == nil { return "emit(index \(index)) with NULL data and length \(length)" }
        return "emit(index \(index)) with length \(length)"
    }

    /// The message of a job whose outcome of `length` bytes did not fit in `maxResultBytes`.
    static func tooLargeMessage(_ length: Int, _ maxResultBytes: Int) -> String {
        "its outcome of \(length) bytes is past the batch's maxResultBytes (\(maxResultBytes)); it was not kept"
    }

    /// The outcome of a job the plugin did not emit, from what `process_batch` returned.
    static func unemitted(returned status: Int32, message: String) -> (message: String, isRetryable: Bool) {
        let failure = message.isEmpty ? "process_batch returned \(status)" : message
        if status == BM_RETRY { return (failure, true) }
        if status != 0 { return (failure, false) }
        return ("No result returned for job", true)
    }

    func outcomes(for batch: Batch<JobBytes>, returned status: Int32, message: String) -> [JobOutcome<JobBytes>] {
        let results = bytes  // one buffer shared by every result of the batch
        let jobs = batch.jobs
        // Outcomes are made from each job's key and id, not from whole jobs: see PluginInstance.
        return jobs.indices.map { index in
            func outcome(_ status: JobStatus, _ result: JobBytes? = nil, _ message: String? = nil, retry: Bool = false) -> JobOutcome<JobBytes> {
                var outcome = JobOutcome(key: jobs[index].key, id: jobs[index].id, status: status, result: result, errorMessage: message,
                                         isRetryable: retry)
                if status == .failed, let detail = details[index] {
                    outcome.failureReason = detail.failureReason
                    outcome.retryAfter = detail.retryAfter
                }
                return outcome
            }
            let range = ranges[index]
            switch statuses[index] {
            case BM_OK: return outcome(.completed, results[range])
            case BM_FAILED: return outcome(.failed, nil, String(decoding: results[range], as: UTF8.self))
            case BM_RETRY: return outcome(.failed, nil, String(decoding: results[range], as: UTF8.self), retry: true)
            case Self.tooLarge: return outcome(.failed, nil, Self.tooLargeMessage(range.count, maxResultBytes))
            default:
                let (message, isRetryable) = Self.unemitted(returned: status, message: message)
                return outcome(.failed, nil, message, retry: isRetryable)
            }
        }
    }

    /// The detail a job was emitted with, if any.
    func detail(_ index: Int) -> OutcomeDetail? { details[index] }

    /// The status a job was emitted with (BM_OK, BM_FAILED, BM_RETRY), or nil.
    func status(_ index: Int) -> Int32? { statuses[index] >= 0 ? statuses[index] : nil }

    /// The bytes a job was emitted with, when the collector keeps them (no `forward`).
    func data(_ index: Int) -> ArraySlice<UInt8> { bytes[ranges[index]] }

    /// The length the plugin tried to emit for a job that was ``wasTooLarge(_:)``.
    func tooLargeLength(_ index: Int) -> Int { ranges[index].count }
}
