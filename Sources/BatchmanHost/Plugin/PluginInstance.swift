import Batchman
import CBatchmanPlugin
import Synchronization

/// Bytes of a job's payload or result: a slice of a larger buffer shared by many jobs, so the
/// hot path does not allocate per job.
public typealias JobBytes = ArraySlice<UInt8>

/// One key's instance of a plugin: calls `process_batch` and turns what it emits into outcomes.
final class PluginInstance: @unchecked Sendable {
    // @unchecked: `handle` is the plugin's opaque instance pointer. Unless the plugin sets
    // BM_FLAG_CONCURRENT, `callLock` keeps calls on it one at a time even when the key runs
    // several batches at once (maxInFlight > 1): the ABI's threading contract.
    let plugin: LoadedPlugin
    let key: String
    private let handle: UnsafeMutableRawPointer
    private let host: PluginHostServices
    private let callLock = Mutex(())

    init(plugin: LoadedPlugin, key: String, handle: UnsafeMutableRawPointer, host: PluginHostServices) {
        self.plugin = plugin
        self.key = key
        self.handle = handle
        self.host = host
    }

    /// Calls the plugin with `batch` on the current thread (a worker thread) and returns one
    /// outcome per job, in the batch's order.
    func process(_ batch: Batch<JobBytes>) -> [JobOutcome<JobBytes>] {
        // The ids and payloads are copied into one buffer so that every pointer handed to C is
        // valid for exactly the duration of the call: one allocation per batch.
        var arena: [UInt8] = []
        arena.reserveCapacity(batch.jobs.reduce(0) { $0 + $1.id.utf8.count + $1.payload.count })
        var spans: [(id: Range<Int>, payload: Range<Int>)] = []
        spans.reserveCapacity(batch.jobs.count)
        for job in batch.jobs {
            let idStart = arena.count
            arena.append(contentsOf: job.id.utf8)
            let payloadStart = arena.count
            arena.append(contentsOf: job.payload)
            spans.append((idStart..<payloadStart, payloadStart..<arena.count))
        }
        let collector = EmitCollector(count: batch.jobs.count)
        var errorBuffer = [CChar](repeating: 0, count: 1024)
        var key = batch.key
        let status = arena.withUnsafeBufferPointer { base in
            var jobs: [bm_job] = []
            jobs.reserveCapacity(spans.count)
            for (job, span) in zip(batch.jobs, spans) {
                jobs.append(bm_job(id: bm_str(UnsafeBufferPointer(rebasing: base[span.id])),
                                   payload: bm_str(UnsafeBufferPointer(rebasing: base[span.payload])),
                                   attempt: UInt32(clamping: job.attempt)))
            }
            return key.withUTF8 { keyBytes in
                jobs.withUnsafeBufferPointer { jobs in
                    errorBuffer.withUnsafeMutableBufferPointer { error in
                        var cBatch = bm_batch(id: batch.id, key: bm_str(keyBytes), jobs: jobs.baseAddress, count: jobs.count)
                        var emitter = bm_emitter(ctx: Unmanaged.passUnretained(collector).toOpaque(), emit: emitCallback)
                        let (errorStart, errorCount) = (error.baseAddress, error.count)
                        let call = { self.plugin.descriptor.pointee.process_batch(self.handle, &cBatch, &emitter, errorStart, errorCount) }
                        return plugin.isConcurrent ? call() : callLock.withLock { _ in call() }
                    }
                }
            }
        }
        let message = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return collector.outcomes(for: batch, returned: status, message: message)
    }

    /// Releases the instance. Call on the control thread, after its last batch.
    func destroy() {
        plugin.descriptor.pointee.destroy(handle)
        host.release()
    }
}

/// Receives a batch's `emit` calls: validates each, copies its bytes into one buffer.
private final class EmitCollector {
    private var statuses: [Int32]
    private var ranges: [Range<Int>]
    private var bytes: [UInt8] = []
    static let notEmitted: Int32 = -1

    init(count: Int) {
        statuses = Array(repeating: Self.notEmitted, count: count)
        ranges = Array(repeating: 0..<0, count: count)
    }

    func emit(index: Int, status: Int32, data: UnsafeRawPointer?, length: Int) -> Int32 {
        guard index >= 0, index < statuses.count, statuses[index] == Self.notEmitted,
              status == BM_OK || status == BM_FAILED || status == BM_RETRY else { return -1 }
        let start = bytes.count
        if let data, length > 0 { bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length)) }
        statuses[index] = status
        ranges[index] = start..<bytes.count
        return 0
    }

    func outcomes(for batch: Batch<JobBytes>, returned status: Int32, message: String) -> [JobOutcome<JobBytes>] {
        let results = bytes  // one buffer shared by every result of the batch
        let failure = message.isEmpty ? "process_batch returned \(status)" : message
        return batch.jobs.enumerated().map { index, job in
            let range = ranges[index]
            switch statuses[index] {
            case BM_OK: return .completed(job, results[range])
            case BM_FAILED: return .failed(job, String(decoding: results[range], as: UTF8.self))
            case BM_RETRY: return .retry(job, String(decoding: results[range], as: UTF8.self))
            default:
                if status == BM_RETRY { return .retry(job, failure) }
                if status != 0 { return .failed(job, failure) }
                return .retry(job, "No result returned for job")
            }
        }
    }
}

/// The C function behind every `bm_emitter`: forwards to the collector in `ctx`.
private let emitCallback: @convention(c) (UnsafeMutableRawPointer?, Int, Int32, UnsafePointer<CChar>?, Int) -> Int32 = {
    context, index, status, data, length in
    guard let context else { return -1 }
    return Unmanaged<EmitCollector>.fromOpaque(context).takeUnretainedValue()
        .emit(index: index, status: status, data: UnsafeRawPointer(data), length: length)
}

/// The core's processor for one key, backed by a plugin instance; every call runs on a
/// dedicated worker thread, never on Swift's cooperative pool.
struct PluginProcessor: BatchProcessor {
    let instance: PluginInstance
    let workers: WorkerPool

    func process(_ batch: Batch<JobBytes>) async throws -> [JobOutcome<JobBytes>] {
        await workers.run { [instance] in instance.process(batch) }
    }
}
