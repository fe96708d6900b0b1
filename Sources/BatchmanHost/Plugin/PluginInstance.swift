import Batchman
import CBatchmanPlugin
import Glibc
import Synchronization

/// Bytes of a job's payload or result: a slice of a larger buffer shared by many jobs, so the
/// hot path does not allocate per job.
public typealias JobBytes = ArraySlice<UInt8>

/// One key's instance of a plugin: queues its calls, calls `process_batch`, turns what it emits
/// into outcomes, and destroys it once its last call has returned.
final class PluginInstance: @unchecked Sendable {
    // @unchecked: `handle` is the plugin's opaque instance pointer, used only as the ABI allows:
    // `calls` keeps calls one at a time unless the plugin sets BM_FLAG_CONCURRENT, and destroy
    // waits until no call is running.
    let plugin: LoadedPlugin
    let key: String
    /// Outcome bytes one batch may return (`maxResultBytes`).
    let maxResultBytes: Int
    private let handle: UnsafeMutableRawPointer
    private let host: PluginHostServices
    private let calls: CallQueue
    /// "plugin "X" (key "k")" as a C string, for the exit guard; lives as long as the process.
    private let callSite: UnsafeMutablePointer<CChar>
    private let hasReportedStrayEmit = Atomic<Bool>(false)
    /// Emits refused because they came outside their call, and why the first one was.
    private let strays = Mutex<(count: Int, first: EmitterSlot.Stray?)>((0, nil))
    /// The key's `timeout`: what a call's `deadline_ns` counts from its start.
    let timeout: Duration?

    init(plugin: LoadedPlugin, key: String, handle: UnsafeMutableRawPointer, host: PluginHostServices, maxResultBytes: Int,
         timeout: Duration? = nil) {
        self.plugin = plugin
        self.key = key
        self.maxResultBytes = maxResultBytes
        self.timeout = timeout
        self.handle = handle
        self.host = host
        self.callSite = strdup("plugin \"\(plugin.name)\" (key \"\(key)\")")
        self.calls = CallQueue(isConcurrent: plugin.isConcurrent)
    }

    /// Runs `call` on one of `workers` when the instance may take it (see ``CallQueue``).
    func schedule(_ call: @escaping CallQueue.Call, on workers: WorkerPool) {
        calls.schedule(call, on: workers)
    }

    /// Calls the plugin with `batch` on the current thread (a worker thread) and returns one
    /// outcome per job, in the batch's order.
    func process(_ batch: Batch<JobBytes>) -> [JobOutcome<JobBytes>] {
        let collector = EmitCollector(count: batch.jobs.count, maxResultBytes: maxResultBytes)
        let (status, message) = call(batch, collector: collector, deadline: timeout.map(Syscall.monotonicDeadline(after:)) ?? 0)
        return collector.outcomes(for: batch, returned: status, message: message)
    }

    /// What one call did, as `batchman plugin-test` checks it: what `process_batch` returned,
    /// which jobs were emitted (a nil status is one that was not; an outcome past
    /// `maxResultBytes` does not count), which `emit` calls were refused and why, and the outcomes.
    struct Probe {
        let returned: Int32
        let message: String
        let refusals: [String]
        /// By job: BM_OK, BM_FAILED or BM_RETRY as emitted, or nil; with the emitted bytes.
        let statuses: [Int32?]
        let data: [ArraySlice<UInt8>]
    }

    /// Calls the plugin with `batch` on the current thread and reports what the call did.
    func probe(_ batch: Batch<JobBytes>) -> Probe {
        let collector = EmitCollector(count: batch.jobs.count, maxResultBytes: maxResultBytes)
        let (status, message) = call(batch, collector: collector, deadline: timeout.map(Syscall.monotonicDeadline(after:)) ?? 0)
        return Probe(returned: status, message: message, refusals: collector.refusals, statuses: batch.jobs.indices.map(collector.status), data: batch.jobs.indices.map(collector.data))
    }

    /// Emits refused so far because they came outside their call, and why the first was.
    var strayEmits: (count: Int, first: EmitterSlot.Stray?) { strays.withLock { $0 } }

    /// Calls `process_batch` with `batch` on the current thread, its emits going to
    /// `collector`, with `deadline` (`CLOCK_MONOTONIC` ns, 0 for none) as its `deadline_ns`;
    /// returns what it returned and the message it left in the error buffer.
    func call(_ batch: Batch<JobBytes>, collector: EmitCollector, deadline: UInt64) -> (Int32, String) {
        // The ids and payloads are copied into one buffer so that every pointer handed to C is
        // valid for exactly the duration of the call: one allocation per batch.
        // Fields are read through the array, never by binding whole jobs: a job copied as a
        // whole goes through its generic value witness (a runtime metadata lookup per copy).
        let jobs = batch.jobs
        var arenaSize = 0
        for index in jobs.indices { arenaSize += jobs[index].id.utf8.count + jobs[index].payload.count }
        var arena: [UInt8] = []
        arena.reserveCapacity(arenaSize)
        var spans: [(id: Range<Int>, payload: Range<Int>)] = []
        spans.reserveCapacity(jobs.count)
        for index in jobs.indices {
            let idStart = arena.count
            arena.append(contentsOf: jobs[index].id.utf8)
            let payloadStart = arena.count
            arena.append(contentsOf: jobs[index].payload)
            spans.append((idStart..<payloadStart, payloadStart..<arena.count))
        }
        return arena.withUnsafeBufferPointer { base in
            var cJobs: [bm_job] = []
            cJobs.reserveCapacity(spans.count)
            for (index, span) in spans.enumerated() {
                cJobs.append(bm_job(id: bm_str(UnsafeBufferPointer(rebasing: base[span.id])),
                                    payload: bm_str(UnsafeBufferPointer(rebasing: base[span.payload])),
                                    attempt: UInt32(clamping: jobs[index].attempt),
                                    flags: jobs[index].isRedelivery ? BM_JOB_REDELIVERED : 0))
            }
            return cJobs.withUnsafeBufferPointer { call(batchId: batch.id, key: batch.key, jobs: $0, collector: collector, deadline: deadline) }
        }
    }

    /// Calls `process_batch` with jobs laid out already (a worker's, in the memory the host
    /// shares with it), on the current thread; otherwise like ``call(_:collector:deadline:)``.
    func call(batchId: UInt64, key: String, jobs: UnsafeBufferPointer<bm_job>, collector: EmitCollector, deadline: UInt64) -> (Int32, String) {
        let (slot, emitter) = EmitterSlot.take(for: self, collector: collector)
        defer { slot.giveBack() }
        var errorBuffer = [CChar](repeating: 0, count: 1024)
        var key = key
        let status = key.withUTF8 { keyBytes in
            errorBuffer.withUnsafeMutableBufferPointer { error in
                var cBatch = bm_batch(id: batchId, key: bm_str(keyBytes), jobs: jobs.baseAddress, count: jobs.count, deadline_ns: deadline)
                return ProcessExitGuard.during(callSite) {
                    plugin.descriptor.pointee.process_batch(handle, &cBatch, emitter, error.baseAddress, error.count)
                }
            }
        }
        return (status, String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// The plugin called `emit` outside a call of its own (through an earlier call's emitter,
    /// after `process_batch` returned, or from another thread): the call was refused; count it,
    /// and say so once per instance.
    func reportStrayEmit(_ stray: EmitterSlot.Stray) {
        strays.withLock { strays in
            strays.count += 1
            if strays.first == nil { strays.first = stray }
        }
        guard !hasReportedStrayEmit.exchange(true, ordering: .relaxed) else { return }
        host.log(.error, "\(stray.sentence) was refused (returned -1). The ABI allows emit only through the emitter of the running call, "
                 + "on its thread, before it returns. Further stray calls are refused silently.")
    }

    /// Takes the instance out of service. Returns true if it is idle: the caller then calls
    /// ``destroyNow()`` on the control thread. False: a call is still running (a shutdown timed
    /// out), and the instance is destroyed on `control` when that call returns, or never if
    /// the process exits first: `destroy` never runs during a call.
    func close(destroyingLaterOn control: WorkerPool) -> Bool {
        calls.close(releasingLaterOn: control) { [self] in callDestroy() }
    }

    /// Calls the plugin's `destroy`. Only after ``close(destroyingLaterOn:)`` returned true, on
    /// the control thread.
    func destroyNow() {
        callDestroy()
    }

    private func callDestroy() {
        ProcessExitGuard.during(callSite) { plugin.descriptor.pointee.destroy(handle) }
        host.release()
    }
}
