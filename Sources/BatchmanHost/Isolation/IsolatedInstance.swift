import Batchman
import CBatchmanPlugin
import Glibc
import Synchronization

/// One key's plugin instance in a worker process of its own (`"isolation": "process"`).
///
/// A worker that dies mid-batch costs that batch, not the host: outcomes it had emitted stand,
/// the rest go to a fresh worker; if they crash it again they are split in halves until the job
/// that crashes alone is found and failed with `crashed`. A batch past its `timeout` gets its
/// worker killed. Calls run one at a time on a thread of the instance's own, which also waits
/// out the restart backoff, so a dying plugin never holds the host's worker threads.
final class IsolatedInstance: @unchecked Sendable {
    // @unchecked: `worker` and `consecutiveDeaths` are touched only on `thread`, in calls the
    // `calls` queue runs one at a time, or by the release that runs after the last of them.
    let key: String
    let pluginName: String
    let pluginVersion: String
    let pluginPath: String
    private let config: String
    private let debug: Bool
    private let memoryLimit: Int?
    private let timeout: Duration?
    private let logger: BatchmanLogger
    private let calls = CallQueue(isConcurrent: false)
    private let thread: WorkerPool
    private var worker: WorkerProcess?
    private var consecutiveDeaths = 0
    private let counters = Mutex(IsolationStatistics())

    /// Starts the key's first worker and waits until it has created the instance.
    /// - Throws: ``PluginLoadError`` with the worker's account of what failed.
    init(
        plugin: String, path: String, key: String, config: String, debug: Bool, memoryLimit: Int?, timeout: Duration?,
        logger: BatchmanLogger
    ) throws(PluginLoadError) {
        switch WorkerProcess.start(pluginPath: path, key: key, config: config, debug: debug, memoryLimit: memoryLimit, logger: logger) {
        case .success(let (worker, name, version)):
            self.worker = worker
            pluginName = name
            pluginVersion = version
        case .failure(let error):
            throw PluginLoadError(code: error.isRefusal ? .createRefused : .workerFailed, plugin: plugin, file: path, key: key,
                                  detail: error.isRefusal ? error.message : "its worker process \(error.message)")
        }
        self.key = key
        self.pluginPath = path
        self.config = config
        self.debug = debug
        self.memoryLimit = memoryLimit
        self.timeout = timeout
        self.logger = logger
        self.thread = WorkerPool(name: "batchman-isolated", threads: 1)
    }

    var statistics: IsolationStatistics { counters.withLock { $0 } }

    func processor() -> IsolatedProcessor { IsolatedProcessor(instance: self) }

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

    private func shutDownWorker() {
        worker?.shutDown()
        worker = nil
    }

    // MARK: - One batch

    private struct Part {
        var indices: [Int]
        /// This set of jobs crashed a worker before: if it does again, it is split.
        var hasCrashed: Bool
    }

    private enum PartEnd {
        case completed
        case died(String)
        case timedOut
    }

    /// Processes `batch` on the instance's thread; one outcome per job.
    func process(_ batch: Batch<JobBytes>) -> [JobOutcome<JobBytes>] {
        var outcomes = [JobOutcome<JobBytes>?](repeating: nil, count: batch.jobs.count)
        let deadline = timeout.map { FrameChannel.monotonicNanoseconds() + UInt64(max(0, $0.nanosecondsClamped)) }
        var parts = [Part(indices: Array(batch.jobs.indices), hasCrashed: false)]
        while let part = parts.popLast() {
            let worker: WorkerProcess
            switch readyWorker() {
            case .success(let ready):
                worker = ready
            case .failure(let error):
                for index in part.indices where outcomes[index] == nil {
                    outcomes[index] = .retry(batch.jobs[index], "plugin \"\(pluginName)\": its worker process \(error.message)")
                }
                continue
            }
            switch run(part.indices, of: batch, on: worker, until: deadline, into: &outcomes) {
            case .completed:
                consecutiveDeaths = 0
            case .timedOut:
                worker.kill()
                worker.wait()
                self.worker = nil
                let message = "batch \(batch.id) timed out after \(timeout.map { "\($0)" } ?? "?"); its worker process was killed"
                for index in batch.jobs.indices where outcomes[index] == nil {
                    outcomes[index] = .retry(batch.jobs[index], message, reason: .timeout)
                }
                logger.log(.warning, "key \"\(key)\": \(message) and is restarted")
                return outcomes.map { $0! }
            case .died(let how):
                self.worker = nil
                consecutiveDeaths += 1
                counters.withLock { $0.crashes += 1 }
                let remaining = part.indices.filter { outcomes[$0] == nil }
                let isAlone = remaining.count == 1 && part.hasCrashed
                logger.log(.warning, "key \"\(key)\": plugin \"\(pluginName)\" crashed (\(how)) in batch \(batch.id) with \(remaining.count) of "
                           + "\(part.indices.count) jobs unanswered; " + (isAlone ? "that job crashes alone: it fails with crashed" : "they go to a fresh worker"))
                if isAlone {
                    let index = remaining[0]
                    outcomes[index] = .retry(batch.jobs[index], "plugin \"\(pluginName)\" crashed (\(how)) while processing this job", reason: .crashed)
                } else if !part.hasCrashed {
                    parts.append(Part(indices: remaining, hasCrashed: true))
                } else if !remaining.isEmpty {
                    let half = remaining.count / 2
                    parts.append(Part(indices: Array(remaining[half...]), hasCrashed: true))
                    parts.append(Part(indices: Array(remaining[..<half]), hasCrashed: true))
                }
            }
        }
        return outcomes.map { $0! }
    }

    /// Starts a worker now if there is none, so the next call finds one ready. If it cannot
    /// start, the call tries again and fails its jobs with why.
    func prepareWorker() {
        _ = readyWorker()
    }

    /// The running worker, or a fresh one after the backoff that consecutive deaths earn: none
    /// for the first restart, then 100 ms doubling to 10 s. Started on the instance's thread,
    /// which outlives the worker: a parent-death signal follows the thread that started it.
    private func readyWorker() -> Result<WorkerProcess, WorkerStartError> {
        if let worker { return .success(worker) }
        if consecutiveDeaths > 1 {
            let milliseconds = min(10_000, 100 << min(consecutiveDeaths - 2, 10))
            usleep(UInt32(milliseconds) * 1000)  // on the instance's own thread: nobody else waits
        }
        counters.withLock { $0.restarts += 1 }
        switch WorkerProcess.start(pluginPath: pluginPath, key: key, config: config, debug: debug, memoryLimit: memoryLimit, logger: logger) {
        case .success(let (worker, _, _)):
            self.worker = worker
            return .success(worker)
        case .failure(let error):
            consecutiveDeaths += 1
            return .failure(error)
        }
    }

    /// Sends the jobs at `indices` as one batch and collects their outcomes.
    private func run(
        _ indices: [Int], of batch: Batch<JobBytes>, on worker: WorkerProcess, until deadline: UInt64?,
        into outcomes: inout [JobOutcome<JobBytes>?]
    ) -> PartEnd {
        let jobs = indices.map { batch.jobs[$0] }
        let frame = WorkerFrame.batch(id: batch.id, key: batch.key, jobs: jobs.map {
            WorkerFrame.Job(id: Array($0.id.utf8), payload: Array($0.payload), attempt: UInt32(clamping: $0.attempt))
        })
        func take(_ index: Int, _ status: Int32, _ data: [UInt8]) {
            guard index < indices.count else { return }
            let job = jobs[index]
            outcomes[indices[index]] = switch status {
            case BM_OK: .completed(job, data[...])
            case BM_FAILED: .failed(job, String(decoding: data, as: UTF8.self))
            default: .retry(job, String(decoding: data, as: UTF8.self))
            }
        }
        // Outcomes arrive in the shared log (read when the batch ends, or the worker died: what
        // it published before a crash stands), or as frames when the log could not grow.
        func takeLog() { for record in worker.outcomes.records() { take(record.index, record.status, record.data) } }
        worker.outcomes.reset()
        guard worker.channel.write(frame) else { return .died(worker.wait()) }
        while true {
            switch worker.channel.read(until: deadline) {
            case .frame(.outcome(let index, let status, let data)):
                take(Int(index), status, data)
            case .frame(.done):
                takeLog()
                return .completed
            case .timedOut:
                takeLog()
                return .timedOut
            case .closed:
                takeLog()
                return .died(worker.wait())
            case .frame, .malformed:
                worker.kill()
                return .died("\(worker.wait()), after sending the host something that is not a batch outcome")
            }
        }
    }
}

/// Crashes and restarts of an isolated key's workers, for the statistics lines.
struct IsolationStatistics: Sendable, Equatable {
    var crashes = 0
    var restarts = 0
}

/// The core's processor for an isolated key: hands batches to its ``IsolatedInstance``.
struct IsolatedProcessor: QueueingBatchProcessor {
    typealias Payload = JobBytes
    typealias Output = JobBytes

    let instance: IsolatedInstance

    func enqueue(_ batch: Batch<JobBytes>, completion: @escaping @Sendable (Result<[JobOutcome<JobBytes>], any Error>) -> Void) {
        instance.schedule { [instance] in
            // A worker is started (or restarted, after its backoff) before the call begins:
            // start-up time is not the plugin's, and does not count against its timeout.
            instance.prepareWorker()
            guard batch.beginCall() else { return { completion(.success([])) } }
            let outcomes = instance.process(batch)
            return { completion(.success(outcomes)) }
        }
    }
}
