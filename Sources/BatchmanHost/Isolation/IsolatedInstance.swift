import Batchman
import CBatchmanPlugin
import Glibc
import Synchronization

/// One key's plugin instance in a worker process of its own (`"isolation": "process"`).
///
/// A worker that dies mid-batch costs that batch, not the host: outcomes it had emitted stand,
/// the rest go to a fresh worker, and if they crash it again ``PoisonSearch`` narrows them down
/// to the jobs that crash alone, which fail with `crashed`; the search restarts workers at once,
/// with no backoff. A worker that sends anything but its batch's outcomes is killed, and that
/// costs the batch the same. A batch past its `timeout` gets its worker killed when the core's
/// timer says so (``Batch/beginCall(onTimeout:)``): there is no second timer here. Calls run one at
/// a time on a thread of the instance's own, which also waits out the restart backoff between
/// batches, so a dying plugin never holds the host's worker threads.
final class IsolatedInstance: @unchecked Sendable {
    // @unchecked: `worker` and `consecutiveDeaths` are touched only on `thread`, in calls the
    // `calls` queue runs one at a time, or by the release that runs after the last of them.

    /// The call in progress, as a timeout or a termination from another thread must see it.
    struct CallState: Equatable {
        /// The batch being processed, nil between calls.
        var batch: UInt64?
        /// The worker running part of it, 0 between runs: what a timeout or ``terminate()`` kills.
        var pid: Int32 = 0
        /// The last batch whose call overran its timeout.
        var overran: UInt64?
    }

    let key: String
    let pluginName: String
    let pluginVersion: String
    let pluginPath: String
    private let start: WorkerFrame.Start
    private let memoryLimit: Int?
    private let timeout: Duration?
    private let logger: BatchmanLogger
    private let calls = CallQueue(isConcurrent: false)
    private let thread: WorkerPool
    private var worker: WorkerProcess?
    private var consecutiveDeaths = 0
    private let counters = Mutex(IsolationStatistics())
    private let callState = Mutex(CallState())
    private let isTerminated = Atomic<Bool>(false)
    /// Runs once, when the instance is shut down for good (its place under `--max-processes`).
    private let onGone: @Sendable () -> Void
    private let isGone = Atomic<Bool>(false)
    /// Where the plugin's `pause` frames go, and the manifest entry whose keys it may pause.
    private let pauser: KeyPauser?
    private let entry: String?

    /// How often a worker under a `memoryLimit` has its resident memory checked during a call.
    static let memoryCheckMilliseconds: Int32 = 50

    /// Starts the key's first worker and waits until it has created the instance.
    /// - Throws: ``PluginLoadError`` with the worker's account of what failed.
    init(
        plugin: String, path: String, key: String, config: String, debug: Bool, manifestDirectory: String = "/", placement: Manifest.Placement,
        timeout: Duration?, pauser: KeyPauser? = nil, entry: String? = nil, logger: BatchmanLogger,
        onGone: @escaping @Sendable () -> Void = {}
    ) throws(PluginLoadError) {
        let start = WorkerFrame.Start(pluginPath: path, key: key, config: config, debug: debug, maxResultBytes: placement.maxResultBytes,
                                      manifestDirectory: manifestDirectory)
        switch WorkerProcess.start(start, memoryLimit: placement.memoryLimit, logger: logger) {
        case .success(let (worker, name, version)):
            self.worker = worker
            pluginName = name
            pluginVersion = version
        case .failure(let error):
            if let refusal = error.refusal {
                throw PluginLoadError(code: .named(refusal) ?? .createRefused, plugin: plugin, file: path, key: key, detail: error.message)
            }
            throw PluginLoadError(code: .workerFailed, plugin: plugin, file: path, key: key, detail: "its worker process \(error.message)")
        }
        self.key = key
        self.pluginPath = path
        self.start = start
        self.memoryLimit = placement.memoryLimit
        self.timeout = timeout
        self.logger = logger
        self.onGone = onGone
        self.pauser = pauser
        self.entry = entry
        self.thread = WorkerPool(name: "batchman-isolated", threads: 1)
    }

    var statistics: IsolationStatistics { counters.withLock { $0 } }

    /// Runs `call` on the instance's thread once the previous call has returned.
    func schedule(_ call: @escaping CallQueue.Call) {
        calls.schedule(call, on: thread)
    }

    /// Takes the instance out of service: true if idle (call ``destroyNow()``); else its worker
    /// is shut down once the running call returns.
    func close(destroyingLaterOn control: WorkerPool) -> Bool {
        calls.close(releasingLaterOn: thread) { [self] in shutDownWorker() }
    }

    /// Shuts the worker down: it destroys the instance and exits.
    func destroyNow() {
        thread.runAndWait { [self] in shutDownWorker() }
        thread.stop()
    }

    /// Ends a call that outlived its welcome (a reload's timeout): kills the worker inside it,
    /// and starts no other. The call then returns, and the instance can be released.
    func terminate() {
        isTerminated.store(true, ordering: .sequentiallyConsistent)
        let pid = callState.withLock { $0.pid }
        if pid != 0 { Glibc.kill(-pid, SIGKILL) }
    }

    /// The call for `batchId` overran its timeout (the core's timer, on its thread): its worker
    /// is killed, now if it runs, or as soon as it starts; the call then ends as timed out.
    func timeOut(_ batchId: UInt64) {
        let pid = callState.withLock { state -> Int32 in
            state.overran = batchId
            return state.batch == batchId ? state.pid : 0
        }
        if pid != 0 { Glibc.kill(-pid, SIGKILL) }
    }

    private func shutDownWorker() {
        worker?.shutDown()
        worker = nil
        if !isGone.exchange(true, ordering: .sequentiallyConsistent) { onGone() }
    }

    // MARK: - One batch

    private enum RunEnd {
        case completed
        case died(String)
        case timedOut
    }

    /// Processes `batch` on the instance's thread; one outcome per job.
    func process(_ batch: Batch<JobBytes>) -> [JobOutcome<JobBytes>] {
        var outcomes = BatchOutcomes(batch, fallback: "plugin \"\(pluginName)\": its worker process gave no outcome for this job")
        // The plugin's `deadline_ns`: when the core's timer, started as the call began, runs out.
        let deadline = timeout.map(Syscall.monotonicDeadline(after:))
        callState.withLock { $0.batch = batch.id }
        defer { callState.withLock { $0.batch = nil } }
        var search = PoisonSearch(count: batch.jobs.count)
        var isFirstRun = true
        search: while case .run(let part) = search.next() {
            let worker: WorkerProcess
            // Only a batch's first run waits out the backoff: the search restarts at once.
            switch readyWorker(afterBackoff: isFirstRun) {
            case .success(let ready):
                worker = ready
            case .failure(let error):
                let message = "plugin \"\(pluginName)\": its worker process \(error.message)"
                outcomes.retryUndecided(message)
                break search
            }
            isFirstRun = false
            switch run(part, of: batch, on: worker, until: deadline, into: &outcomes) {
            case .completed:
                consecutiveDeaths = 0
            case .timedOut:
                self.worker = nil
                let message = "batch \(batch.id) timed out after \(timeout.map { "\($0)" } ?? "?"); its worker process was killed"
                outcomes.retryUndecided(message, reason: .timeout)
                logger.log(.warning, "key \"\(batch.key)\": \(message) and is restarted", context: .init(key: batch.key, plugin: pluginName))
                break search
            case .died(let how):
                self.worker = nil
                consecutiveDeaths += 1
                counters.withLock { $0.crashes += 1 }
                let unanswered = part.filter { !outcomes.isDecided($0) }
                let poisoned = search.crashed(unanswered: unanswered)
                let next = poisoned != nil ? "that job crashes alone: it fails with crashed"
                    : unanswered.isEmpty ? "every job had its outcome" : "they go to a fresh worker"
                logger.log(.warning, "key \"\(batch.key)\": plugin \"\(pluginName)\" crashed (\(how)) in batch \(batch.id) with \(unanswered.count) of "
                           + "\(part.count) jobs unanswered; \(next)", context: .init(key: batch.key, plugin: pluginName))
                if let poisoned {
                    outcomes.retry(poisoned, "plugin \"\(pluginName)\" crashed (\(how)) while processing this job", reason: .crashed)
                }
            }
        }
        return outcomes.outcomes
    }

    /// Starts a worker now if there is none, so the next call finds one ready. If it cannot
    /// start, the call tries again and fails its jobs with why.
    func prepareWorker() {
        _ = readyWorker(afterBackoff: true)
    }

    /// The running worker, or a fresh one; `afterBackoff`: first waiting out what consecutive
    /// deaths earn (none for the first restart, then 100 ms doubling to 10 s). Started on the
    /// instance's thread, which outlives the worker: a parent-death signal follows the thread
    /// that started it.
    private func readyWorker(afterBackoff: Bool) -> Result<WorkerProcess, WorkerStartError> {
        if let worker { return .success(worker) }
        if afterBackoff, consecutiveDeaths > 1 {
            let milliseconds = min(10_000, 100 << min(consecutiveDeaths - 2, 10))
            usleep(UInt32(milliseconds) * 1000)  // on the instance's own thread: nobody else waits
        }
        guard !isTerminated.load(ordering: .sequentiallyConsistent) else {
            return .failure(WorkerStartError("was stopped: the configuration it served was replaced"))
        }
        counters.withLock { $0.restarts += 1 }
        switch WorkerProcess.start(start, memoryLimit: memoryLimit, logger: logger) {
        case .success(let (worker, _, _)):
            self.worker = worker
            return .success(worker)
        case .failure(let error):
            consecutiveDeaths += 1
            return .failure(error)
        }
    }

    /// Sends the jobs at `part` as one batch and collects their outcomes.
    private func run(
        _ part: [Int], of batch: Batch<JobBytes>, on worker: WorkerProcess, until deadline: UInt64?,
        into outcomes: inout BatchOutcomes
    ) -> RunEnd {
        let token = UInt64.random(in: .min ... .max)
        // The worker reads the previous batch's jobs no more: it sent that batch's `done`, or died.
        guard let length = worker.jobs.write(part, of: batch) else {
            worker.kill()
            worker.wait()
            return .died("killed by the host: the shared memory for its batch of \(part.count) jobs cannot grow")
        }
        let frame = WorkerFrame.batch(id: batch.id, token: token, key: batch.key, deadline: deadline ?? 0, count: UInt32(part.count),
                                      length: UInt64(length))
        /// The outcomes the worker published stand; false if what it published is not honest.
        func takeLog() -> String? {
            switch worker.outcomes.read(count: part.count, maxResultBytes: start.maxResultBytes) {
            case .broken(let why):
                return why
            case .records(let records, let bytes):
                for record in records {
                    let index = part[record.index]
                    switch record.status {
                    case BM_OK:
                        outcomes.complete(index, bytes[record.bytes])
                    case BM_FAILED:
                        outcomes.fail(index, String(decoding: bytes[record.bytes], as: UTF8.self), reason: record.detail?.failureReason)
                    default:
                        outcomes.retry(index, String(decoding: bytes[record.bytes], as: UTF8.self), reason: record.detail?.failureReason,
                                       after: record.detail?.retryAfter)
                    }
                }
                return nil
            }
        }
        /// Kills a worker that broke the protocol; its batch is retried as if it had crashed.
        func broken(_ why: String) -> RunEnd {
            worker.kill()
            worker.wait()
            return .died("killed by the host: \(why)")
        }
        worker.outcomes.reset()
        guard worker.channel.write(frame) else { return .died("\(worker.wait())") }
        let overranAlready = callState.withLock { state in
            state.pid = worker.pid
            return state.overran == batch.id
        }
        defer { callState.withLock { $0.pid = 0 } }
        if overranAlready || isTerminated.load(ordering: .sequentiallyConsistent) { worker.kill() }
        /// Whether the worker ended because the core timed the call out (``timeOut(_:)``).
        func overran() -> Bool { callState.withLock { $0.overran == batch.id } }
        while true {
            switch worker.read(wakeEvery: memoryLimit == nil ? nil : Self.memoryCheckMilliseconds) {
            case .frame(.done(token, let returned, let message)):
                if let why = takeLog() { return broken(why) }
                let (failure, isRetryable) = EmitCollector.unemitted(returned: returned, message: message)
                for index in part where !outcomes.isDecided(index) {
                    if isRetryable { outcomes.retry(index, failure) } else { outcomes.fail(index, failure) }
                }
                return .completed
            case .frame(.pause(let key, let milliseconds)):
                if pauser?.pause(key: key, milliseconds: milliseconds, from: entry) == false {
                    logger.log(.warning, "key \"\(batch.key)\": plugin \"\(pluginName)\" asked to pause key \"\(key)\", which is not its entry's; refused",
                               context: .init(key: batch.key, plugin: pluginName))
                }
            case .frame:
                return broken("it sent a frame that is not this batch's end")
            case .malformed(let what):
                return broken("it sent \(what)")
            case .closed where overran(), .processEnded where overran(), .timedOut:  // no deadline is given: .timedOut does not come
                worker.kill()
                worker.wait()
                return .timedOut
            case .closed, .processEnded:
                let how = worker.wait()
                if let why = takeLog() { return .died("\(how), after publishing outcomes no worker writes: \(why)") }
                return .died("\(how)")
            case .idle:
                if let memoryLimit, let resident = worker.residentBytes, resident > memoryLimit {
                    worker.kill()
                    _ = takeLog()
                    worker.wait()
                    return .died("killed by the host: \(resident / (1 << 20)) MiB resident, past its memoryLimit of \(memoryLimit / (1 << 20)) MiB")
                }
            }
        }
    }
}
