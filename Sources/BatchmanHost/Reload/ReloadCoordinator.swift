import Batchman
import Dispatch
import Synchronization

/// Carries out reloads (SIGHUP, `--watch`) one at a time: re-reads the manifest, checks all of
/// it as `check` does, loads the plugins and creates every instance, and only then stages the
/// new generation for the reader. A failed reload changes nothing. A request that arrives
/// during a reload is remembered and carried out after it.
final class ReloadCoordinator: Sendable {
    private struct State {
        var isRunning = false
        var isPending = false
        var isClosed = false
    }

    private let manifestPath: String
    private let generations: Generations
    private let control: WorkerPool
    private let workers: WorkerPool
    private let budget: ProcessBudget
    private let logger: BatchmanLogger
    /// Told when a reload begins and ends (`/ready`, systemd's RELOADING=1).
    private let status: HostStatus?
    /// Wakes the reader so that it takes a staged generation even while input is idle.
    private let wakeReader: @Sendable () -> Void
    private let state = Mutex(State())
    /// Signalled when the reader took the staged generation, or reading ended.
    private let switched = DispatchSemaphore(value: 0)

    init(
        manifestPath: String, generations: Generations, control: WorkerPool, workers: WorkerPool, budget: ProcessBudget,
        logger: BatchmanLogger, status: HostStatus? = nil, wakeReader: @escaping @Sendable () -> Void
    ) {
        self.status = status
        self.manifestPath = manifestPath
        self.generations = generations
        self.control = control
        self.workers = workers
        self.budget = budget
        self.logger = logger
        self.wakeReader = wakeReader
    }

    /// Asks for a reload; `cause` says why, in the log.
    func request(_ cause: String) {
        let start = state.withLock { state -> Bool in
            guard !state.isClosed else { return false }
            guard !state.isRunning else {
                state.isPending = true
                return false
            }
            state.isRunning = true
            return true
        }
        logger.log(.info, "\(cause): reloading \(manifestPath)\(start ? "" : " after the reload under way")")
        if start { DedicatedThread.start(name: "batchman-reload") { [self] in runReloads() } }
    }

    /// The reader took the staged generation.
    func didSwitch() {
        switched.signal()
    }

    /// Reading has ended: no more reloads.
    func close() {
        state.withLock { $0.isClosed = true }
        switched.signal()
    }

    private func runReloads() {
        repeat {
            reload()
        } while state.withLock { state -> Bool in
            guard state.isPending, !state.isClosed else {
                state.isRunning = false
                return false
            }
            state.isPending = false
            return true
        }
    }

    private func reload() {
        status?.reloading()
        let number = generations.beginReload()
        let current = generations.current
        let next: HostGeneration
        do throws(HostError) {
            let manifest = try Host.loadManifest(manifestPath)
            next = try HostGeneration(number: current.number + 1, manifest: manifest, after: current.drained,
                                      batchIds: current.core.batchIds, control: control, workers: workers, budget: budget,
                                      proving: true, logger: logger)
        } catch {
            generations.reloadFailed()
            for problem in error.message.split(separator: "\n") { logger.log(.error, "reload failed: \(problem)", context: .init(reload: number)) }
            logger.log(.error, "reload \(number): failed, kept the running configuration", context: .init(reload: number))
            status?.reloaded()
            return
        }
        guard generations.stage(next, reload: number) else {
            next.registry.destroyAll()  // reading has ended: nobody will switch to it
            return
        }
        wakeReader()
        switched.wait()
        status?.reloaded()
    }
}
