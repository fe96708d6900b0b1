import Batchman
import CBatchmanPlugin

/// Receives one batch's `emit` calls: validates each, copies its bytes into one buffer.
final class EmitCollector {
    /// Told of each accepted outcome as it is emitted (a worker process streams them).
    typealias Forward = (_ index: Int, _ status: Int32, _ data: UnsafeRawBufferPointer) -> Void

    private var statuses: [Int32]
    private var ranges: [Range<Int>]
    private var bytes: [UInt8] = []
    private let forward: Forward?
    static let notEmitted: Int32 = -1

    /// Why `emit` calls were refused, the first few: what `batchman plugin-test` reports.
    private(set) var refusals: [String] = []
    private static let refusalsKept = 8

    init(count: Int, forward: Forward? = nil) {
        statuses = Array(repeating: Self.notEmitted, count: count)
        ranges = Array(repeating: 0..<0, count: count)
        self.forward = forward
    }

    /// Whether the job at `index` has an outcome from `emit`.
    func wasEmitted(_ index: Int) -> Bool { statuses[index] != Self.notEmitted }

    /// 0 if the outcome was taken, -1 if the call breaks the contract: an index out of range or
    /// already answered, an unknown status, or NULL data with a non-zero length.
    func emit(index: Int, status: Int32, data: UnsafeRawPointer?, length: Int) -> Int32 {
        guard index >= 0, index < statuses.count, statuses[index] == Self.notEmitted,
              status == BM_OK || status == BM_FAILED || status == BM_RETRY,
              data != nil || length == 0, length >= 0 else {
            if refusals.count < Self.refusalsKept { refusals.append(Self.describeRefusal(index, status, data, length, statuses)) }
            return -1
        }
        let start = bytes.count
        if let data, length > 0 { bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length)) }
        statuses[index] = status
        ranges[index] = start..<bytes.count
        if let forward { bytes.withUnsafeBytes { forward(index, status, UnsafeRawBufferPointer(rebasing: $0[start...])) } }
        return 0
    }

    private static func describeRefusal(_ index: Int, _ status: Int32, _ data: UnsafeRawPointer?, _ length: Int, _ statuses: [Int32]) -> String {
        if index < 0 || index >= statuses.count { return "emit(index \(index)) is out of range 0..<\(statuses.count)" }
        if statuses[index] != notEmitted { return "emit(index \(index)) a second time" }
        if status != BM_OK && status != BM_FAILED && status != BM_RETRY { return "emit(index \(index)) with status \(status), not BM_OK, BM_FAILED or BM_RETRY" }
        if data == nil { return "emit(index \(index)) with NULL data and length \(length)" }
        return "emit(index \(index)) with length \(length)"
    }

    func outcomes(for batch: Batch<JobBytes>, returned status: Int32, message: String) -> [JobOutcome<JobBytes>] {
        let results = bytes  // one buffer shared by every result of the batch
        let failure = message.isEmpty ? "process_batch returned \(status)" : message
        let jobs = batch.jobs
        // Outcomes are made from each job's key and id, not from whole jobs: see PluginInstance.
        return jobs.indices.map { index in
            func outcome(_ status: JobStatus, _ result: JobBytes? = nil, _ message: String? = nil, retry: Bool = false) -> JobOutcome<JobBytes> {
                JobOutcome(key: jobs[index].key, id: jobs[index].id, status: status, result: result, errorMessage: message, isRetryable: retry)
            }
            let range = ranges[index]
            switch statuses[index] {
            case BM_OK: return outcome(.completed, results[range])
            case BM_FAILED: return outcome(.failed, nil, String(decoding: results[range], as: UTF8.self))
            case BM_RETRY: return outcome(.failed, nil, String(decoding: results[range], as: UTF8.self), retry: true)
            default:
                if status == BM_RETRY { return outcome(.failed, nil, failure, retry: true) }
                if status != 0 { return outcome(.failed, nil, failure) }
                return outcome(.failed, nil, "No result returned for job", retry: true)
            }
        }
    }
}
