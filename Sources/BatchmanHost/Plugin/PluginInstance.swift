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
    private let handle: UnsafeMutableRawPointer
    private let host: PluginHostServices
    private let calls = Mutex(CallQueue())
    /// "plugin "X" (key "k")" as a C string, for the exit guard; lives as long as the process.
    private let callSite: UnsafeMutablePointer<CChar>
    private let hasReportedStrayEmit = Atomic<Bool>(false)

    /// The calls of one instance: how many run, which wait for a non-concurrent instance, and
    /// whether it is being destroyed.
    private struct CallQueue {
        enum Phase {
            case live
            /// Destroy was asked for while calls ran: the last one to return does it.
            case closing(control: WorkerPool)
            case destroyed
        }

        var running = 0
        var waiting = FIFOQueue<@Sendable () -> Void>()
        var phase = Phase.live
    }

    init(plugin: LoadedPlugin, key: String, handle: UnsafeMutableRawPointer, host: PluginHostServices) {
        self.plugin = plugin
        self.key = key
        self.handle = handle
        self.host = host
        self.callSite = strdup("plugin \"\(plugin.name)\" (key \"\(key)\")")
    }

    /// Runs `call` on one of `workers` once the instance may take it: at once for a concurrent
    /// plugin, else when its previous call has returned. A waiting call occupies no thread, so
    /// a busy instance never parks the workers other keys need.
    func schedule(_ call: @escaping @Sendable () -> Void, on workers: WorkerPool) {
        let startNow = calls.withLock { queue -> Bool in
            guard plugin.isConcurrent || queue.running == 0 else {
                queue.waiting.append(call)
                return false
            }
            queue.running += 1
            return true
        }
        if startNow { workers.submit { [self] in runThenStartNext(call, on: workers) } }
    }

    private func runThenStartNext(_ call: @escaping @Sendable () -> Void, on workers: WorkerPool) {
        call()
        let (next, destroyOn) = calls.withLock { queue -> ((@Sendable () -> Void)?, WorkerPool?) in
            if let next = queue.waiting.popFirst() { return (next, nil) }
            queue.running -= 1
            guard queue.running == 0, case .closing(let control) = queue.phase else { return (nil, nil) }
            queue.phase = .destroyed
            return (nil, control)
        }
        // The next call goes to the back of the pool's queue: other keys' batches get their turn.
        if let next { workers.submit { [self] in runThenStartNext(next, on: workers) } }
        if let destroyOn { destroyOn.submit { [self] in callDestroy() } }
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
        let (slot, emitter) = EmitterSlot.take(for: self, collector: collector)
        defer { slot.giveBack() }
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
                        return ProcessExitGuard.during(callSite) {
                            plugin.descriptor.pointee.process_batch(handle, &cBatch, emitter, error.baseAddress, error.count)
                        }
                    }
                }
            }
        }
        let message = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return collector.outcomes(for: batch, returned: status, message: message)
    }

    /// The plugin called `emit` outside a call of its own (after `process_batch` returned, or
    /// from another thread): the call was refused; say so once per instance.
    func reportStrayEmit() {
        guard !hasReportedStrayEmit.exchange(true, ordering: .relaxed) else { return }
        host.log(.error, "emit() was called after process_batch() returned or from another thread; it was refused (returned -1). "
                 + "The ABI allows emit only on the calling thread, during the call. Further stray calls are refused silently.")
    }

    /// Takes the instance out of service. Returns true if it is idle: the caller then calls
    /// ``destroyNow()`` on the control thread. False: a call is still running (a shutdown timed
    /// out), and the instance is destroyed on `control` when that call returns, or never if
    /// the process exits first: `destroy` never runs during a call.
    func close(destroyingLaterOn control: WorkerPool) -> Bool {
        calls.withLock { queue -> Bool in
            guard case .live = queue.phase else { return false }
            guard queue.running == 0 else {
                queue.phase = .closing(control: control)
                return false
            }
            queue.phase = .destroyed
            return true
        }
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
