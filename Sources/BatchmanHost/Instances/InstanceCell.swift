import Batchman
import Dispatch
import Synchronization

/// One plugin instance of a manifest entry: made when a batch first needs it (on the control
/// thread, while the batch waits, holding no thread), used by batches, and (a per-key one)
/// retired once it has been idle for a while; the key then gets a new cell when it needs one.
///
/// A `create` that refuses fails the batches that waited for it, and the ones that come in the
/// next second (a refusal is not asked again for every batch); after that, the next batch tries
/// again: a backend that was down may be up.
final class InstanceCell: Sendable {
    /// Makes the instance and reports it, from any thread.
    typealias Make = @Sendable (_ done: @escaping @Sendable (Result<any KeyInstance, PluginLoadError>) -> Void) -> Void

    /// The decisions; batches that wait are tokens.
    struct StateMachine: Equatable {
        enum Phase: Equatable {
            case absent
            case making
            /// `running`: batches handed to the instance and not yet answered.
            case ready(running: Int, lastUsed: UInt64)
            /// `create` refused at `at`: batches fail with `message` until a second has passed.
            case refused(message: String, at: UInt64)
            /// Idle too long: its instance was released, and the key needs a new cell.
            case retired
            case closed
        }

        enum Use: Equatable {
            /// Make the instance; the batch waits for it.
            case make
            case wait
            case run
            case fail(String)
            /// Retired just now: find the key's new cell.
            case retired
            /// The entry is out of service (its configuration was replaced).
            case closed
        }

        enum Made: Equatable {
            case run([UInt64])
            case fail([UInt64], String)
            /// Closed while it was being made: destroy it, and fail these.
            case discard([UInt64])
        }

        static let refusalHeld: UInt64 = 1_000_000_000

        private(set) var phase = Phase.absent
        private(set) var waiting: [UInt64] = []

        mutating func use(_ token: UInt64, now: UInt64) -> Use {
            switch phase {
            case .absent:
                waiting.append(token)
                phase = .making
                return .make
            case .making:
                waiting.append(token)
                return .wait
            case .ready(let running, let lastUsed):
                phase = .ready(running: running + 1, lastUsed: lastUsed)
                return .run
            case .refused(let message, let at) where now - at < Self.refusalHeld:
                return .fail(message)
            case .refused:
                phase = .absent
                return use(token, now: now)
            case .retired:
                return .retired
            case .closed:
                return .closed
            }
        }

        /// A key's first job has come: make the instance now, before its first batch, if there
        /// is none. True: make it (nobody waits for it yet).
        mutating func warm() -> Bool {
            guard phase == .absent else { return false }
            phase = .making
            return true
        }

        mutating func made(_ result: Result<Void, PluginLoadError>, now: UInt64) -> Made {
            defer { waiting = [] }
            guard phase == .making else { return .discard(waiting) }
            switch result {
            case .success:
                phase = .ready(running: waiting.count, lastUsed: now)
                return .run(waiting)
            case .failure(let error):
                phase = .refused(message: error.description, at: now)
                return .fail(waiting, error.description)
            }
        }

        mutating func ended(now: UInt64) {
            guard case .ready(let running, _) = phase else { return }
            phase = .ready(running: max(0, running - 1), lastUsed: now)
        }

        /// Since when it has been idle (nothing handed to it and not answered), if it has.
        var idleSince: UInt64? {
            guard case .ready(0, let lastUsed) = phase else { return nil }
            return lastUsed
        }

        /// Retires it if it has been idle since `cutoff` or before, or never made one and holds
        /// no batch: true, and the caller releases the instance, if any.
        mutating func retire(idleSince cutoff: UInt64) -> Bool {
            switch phase {
            case .ready(0, let lastUsed) where lastUsed <= cutoff: break
            case .refused(_, let at) where at <= cutoff: break
            case .absent: break
            default: return false
            }
            phase = .retired
            return true
        }

        /// Out of service for good. True: it had an instance, which the caller releases.
        mutating func close() -> Bool {
            defer { phase = .closed }
            if case .ready = phase { return true }
            return false
        }
    }

    private struct State {
        var machine = StateMachine()
        var instance: (any KeyInstance)?
        var waiting: [UInt64: Batch<JobBytes>] = [:]
        var completions: [UInt64: BatchCompletion] = [:]
        var nextToken: UInt64 = 0
    }

    let key: String
    private let make: Make
    private let workers: WorkerPool
    /// After each batch it ran (a waiting worker may now take this idle one's place).
    private let onEnded: @Sendable () -> Void
    private let state = Mutex(State())

    init(key: String, workers: WorkerPool, onEnded: @escaping @Sendable () -> Void = {}, make: @escaping Make) {
        self.key = key
        self.workers = workers
        self.onEnded = onEnded
        self.make = make
    }

    /// The instance, while it has one.
    var instance: (any KeyInstance)? { state.withLock { $0.instance } }

    var idleSince: UInt64? { state.withLock { $0.machine.idleSince } }

    /// Retired: a batch for its key needs a new cell.
    var isRetired: Bool { state.withLock { $0.machine.phase == .retired } }

    /// Runs `batch` on the instance, made first if need be. False: the cell was retired, and
    /// the batch is not taken (give it to the key's new cell).
    func run(_ batch: Batch<JobBytes>, completion: @escaping BatchCompletion) -> Bool {
        let now = Syscall.monotonicNanoseconds()
        let (use, instance) = state.withLock { state -> (StateMachine.Use, (any KeyInstance)?) in
            state.nextToken += 1
            let token = state.nextToken
            let use = state.machine.use(token, now: now)
            if use == .make || use == .wait {
                state.waiting[token] = batch
                state.completions[token] = completion
            }
            return (use, state.instance)
        }
        switch use {
        case .make:
            make { [self] result in made(result) }
        case .wait:
            break
        case .run:
            hand(batch, to: instance!, completion: completion)
        case .fail(let message):
            completion(.failure(InstanceUnavailable(message: message)))
        case .retired:
            return false
        case .closed:
            completion(.failure(InstanceUnavailable(message: "the instance of key \"\(key)\" is out of service: its configuration was replaced")))
        }
        return true
    }

    private func made(_ result: Result<any KeyInstance, PluginLoadError>) {
        let now = Syscall.monotonicNanoseconds()
        let (made, batches) = state.withLock { state -> (StateMachine.Made, [(Batch<JobBytes>, BatchCompletion)]) in
            let made = state.machine.made(result.map { _ in () }, now: now)
            let tokens: [UInt64] = switch made {
            case .run(let tokens), .fail(let tokens, _), .discard(let tokens): tokens
            }
            if case .run = made, case .success(let instance) = result { state.instance = instance }
            let batches = tokens.compactMap { token -> (Batch<JobBytes>, BatchCompletion)? in
                guard let batch = state.waiting.removeValue(forKey: token), let completion = state.completions.removeValue(forKey: token) else { return nil }
                return (batch, completion)
            }
            return (made, batches)
        }
        switch made {
        case .run:
            guard case .success(let instance) = result else { return }
            for (batch, completion) in batches { hand(batch, to: instance, completion: completion) }
        case .fail(_, let message):
            for (_, completion) in batches { completion(.failure(InstanceUnavailable(message: message))) }
        case .discard:
            if case .success(let instance) = result, instance.close(destroyingLaterOn: workers) { instance.destroyNow() }
            for (_, completion) in batches {
                completion(.failure(InstanceUnavailable(message: "the instance of key \"\(key)\" is out of service: its configuration was replaced")))
            }
        }
    }

    private func hand(_ batch: Batch<JobBytes>, to instance: any KeyInstance, completion: @escaping BatchCompletion) {
        instance.run(batch, on: workers) { [self] outcomes in
            // Idle from now on (for retirement), before whoever gets the outcomes sees them.
            state.withLock { $0.machine.ended(now: Syscall.monotonicNanoseconds()) }
            completion(outcomes)
            onEnded()
        }
    }

    /// Starts making the instance if it has none; batches that come meanwhile wait for it.
    func warm() {
        guard state.withLock({ $0.machine.warm() }) else { return }
        make { [self] result in made(result) }
    }

    /// Makes the instance now (for `check`, and a reload that proves its configuration) and
    /// waits for it; the error if `create` refused.
    func makeNow() -> PluginLoadError? {
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<PluginLoadError?>(nil)
        let mustMake = state.withLock { state -> Bool in
            guard case .absent = state.machine.phase else { return false }
            state.nextToken += 1
            _ = state.machine.use(state.nextToken, now: Syscall.monotonicNanoseconds())
            return true
        }
        guard mustMake else { return nil }
        make { [self] result in
            if case .failure(let error) = result { outcome.withLock { $0 = error } }
            made(result)
            // The proving batch's place: nobody waits for it.
            state.withLock { $0.machine.ended(now: Syscall.monotonicNanoseconds()) }
            done.signal()
        }
        done.wait()
        return outcome.withLock { $0 }
    }

    /// Retires the cell if it has been idle since `cutoff` (or never made its instance): whether
    /// it did, and the instance to release, if it had one.
    func retire(idleSince cutoff: UInt64) -> (retired: Bool, instance: (any KeyInstance)?) {
        state.withLock { state in
            guard state.machine.retire(idleSince: cutoff) else { return (false, nil) }
            defer { state.instance = nil }
            return (true, state.instance)
        }
    }

    /// Out of service for good; the instance to release, if it had one.
    func close() -> (any KeyInstance)? {
        let (instance, waiting) = state.withLock { state -> ((any KeyInstance)?, [BatchCompletion]) in
            let had = state.machine.close()
            defer {
                state.instance = nil
                state.waiting = [:]
                state.completions = [:]
            }
            return (had ? state.instance : nil, Array(state.completions.values))
        }
        for completion in waiting {
            completion(.failure(InstanceUnavailable(message: "the instance of key \"\(key)\" is out of service: its configuration was replaced")))
        }
        return instance
    }
}

/// A batch could not reach its instance: `create` refused, or the configuration was replaced.
struct InstanceUnavailable: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
