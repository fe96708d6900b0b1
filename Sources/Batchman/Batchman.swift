import FoundationEssentials
import Synchronization

// Why this file and Batcher.swift are @inlinable: Batchman is generic over payload, output and
// clock, and its clients (the host, your app) live in other modules. Called unspecialised, every
// generic operation looks up type metadata at run time, which cost 3-4x on the hot path (see the
// README's Performance section); inlinable code is specialised in the client for its own types.
// Only this thin generic layer is: the engines that decide (IntakeEngine, FlightEngine, the
// scheduler, the heap) work on job slots, batch ids, counts and durations, are compiled once
// here, and are called, not inlined.

/// Batches jobs per key and hands each batch to a processor, then returns one result per job.
///
/// ```swift
/// let batchman = try Batchman<String, String>(config: BatchmanConfig(frequency: .milliseconds(50))) { _ in
///     ClosureProcessor { batch in batch.jobs.map { .completed($0, $0.payload.uppercased()) } }
/// }
/// let result = await batchman.submit(id: "1", key: "greetings", payload: "hello")
/// print(result.result ?? "")   // HELLO
/// await batchman.shutdown()
/// ```
///
/// Every submitted job gets exactly one result: completed, or failed with a ``FailureReason``.
/// Jobs of one key are batched together and processed one batch at a time by that key's own
/// processor instance; different keys are processed in parallel.
public final class Batchman<Payload: Sendable, Output: Sendable, C: Clock>: Sendable where C.Duration == Duration {
    /// Makes the processor for a key; called once per key, when its first job arrives.
    public typealias ProcessorFactory = @Sendable (_ key: String) throws -> any BatchProcessor<Payload, Output>

    @usableFromInline struct State {
        @inlinable init() {}

        /// Keys by their exact bytes: canonically equivalent keys are still different keys.
        @usableFromInline var batchers: [ExactString: BatcherSlot] = [:]
        /// The batcher found last, and its key: jobs come in runs of one key, and a run's jobs
        /// then find their batcher without hashing the key (most of a lookup's cost).
        @usableFromInline var lastFound: (key: String, batcher: Batcher<Payload, Output, C>)?
        @usableFromInline var isShuttingDown = false
    }

    /// A key's place in the batcher map.
    @usableFromInline enum BatcherSlot: Sendable {
        case ready(Batcher<Payload, Output, C>)
        /// Its processor is being made, outside the lock; submitters wait at the capacity gate.
        case creating
        /// Its factory threw: every job of the key is refused with this message, and the factory
        /// is not called again.
        case failed(String)

        @inlinable var batcher: Batcher<Payload, Output, C>? {
            guard case .ready(let batcher) = self else { return nil }
            return batcher
        }
    }

    /// The name of the one batcher all keys share when `useInstancePerKey` is false, and of the
    /// factory used for keys without one of their own.
    @inlinable public static var defaultKey: String { "default" }

    /// Draws a retry's delay below the backoff ceiling.
    public typealias Jitter = @Sendable (_ ceiling: Duration) -> Duration

    /// Full jitter: a delay drawn uniformly between zero and the ceiling, so retries of many
    /// jobs spread out instead of arriving together.
    @inlinable public static var fullJitter: Jitter {
        { ceiling in .nanoseconds(Int64.random(in: 0...max(0, ceiling.nanosecondsClamped))) }
    }

    public let config: BatchmanConfig
    @usableFromInline let factories: [ExactString: ProcessorFactory]
    @usableFromInline let state = Mutex(State())
    /// The clock, scheduler and shared state, handed to every key's batcher.
    @usableFromInline let context: BatcherContext<Payload, C>
    /// The policy every key on the defaults shares.
    @usableFromInline let defaultPolicy: KeyPolicy
    @inlinable var clock: C { context.clock }
    @inlinable var scheduler: FlushScheduler { context.scheduler }
    @inlinable var shared: BatchmanShared { context.shared }
    @inlinable var logger: BatchmanLogger { shared.logger }

    /// Creates a Batchman whose keys get their processors from `processors`, which must have a
    /// factory for ``defaultKey``; keys without a factory of their own use it.
    ///
    /// - Parameters:
    ///   - payloadSize: a payload's size in bytes, for `maxBatchBytes`; `String`, `[UInt8]`,
    ///     `ArraySlice<UInt8>` and `Data` payloads are measured without it.
    ///   - jitter: draws each retry's delay below its ceiling (default ``fullJitter``).
    ///   - batchIds: where batch ids come from; share one to keep ids unique across instances.
    /// - Throws: ``BatchmanConfigurationError`` with the seed's message for an invalid config.
    @inlinable public init(
        config: BatchmanConfig = BatchmanConfig(), processors: [String: ProcessorFactory],
        clock: C, logger: BatchmanLogger = .standardError,
        payloadSize: (@Sendable (Payload) -> Int)? = nil, jitter: @escaping Jitter = Batchman.fullJitter,
        batchIds: BatchIdGenerator = BatchIdGenerator()
    ) throws(BatchmanConfigurationError) {
        try config.validate(processorKeys: processors.keys, hasDefaultProcessor: processors[Self.defaultKey] != nil)
        let payloadSize = payloadSize ?? Self.builtInPayloadSize
        let usesByteLimit = config.defaults.maxBatchBytes != nil || config.keyConfigOverrides.contains { $0.maxBatchBytes != nil }
        if usesByteLimit, payloadSize == nil {
            throw BatchmanConfigurationError(.invalid("maxBatchBytes needs the payloadSize parameter to measure \(Payload.self) payloads"))
        }
        self.config = config
        self.factories = Dictionary(processors.map { (ExactString($0.key), $0.value) }, uniquingKeysWith: { first, _ in first })
        let origin = clock.now
        let scheduler = FlushScheduler(
            now: { origin.duration(to: clock.now) },
            sleepUntil: { try await clock.sleep(until: origin.advanced(by: $0), tolerance: nil) })
        let shared = BatchmanShared(logger: logger, maxPendingTotal: config.maxPendingTotal, batchIds: batchIds)
        self.context = BatcherContext(clock: clock, origin: origin, scheduler: scheduler, shared: shared,
                                      payloadSize: usesByteLimit ? payloadSize : nil)
        self.defaultPolicy = KeyPolicy(config: config.defaults, batchIds: batchIds, jitter: jitter)
    }

    /// How payload types Batchman knows are measured.
    @inlinable static var builtInPayloadSize: (@Sendable (Payload) -> Int)? {
        switch Payload.self {
        case is String.Type: { ($0 as! String).utf8.count }
        case is [UInt8].Type: { ($0 as! [UInt8]).count }
        case is ArraySlice<UInt8>.Type: { ($0 as! ArraySlice<UInt8>).count }
        case is Data.Type: { ($0 as! Data).count }
        default: nil
        }
    }

    /// Creates a Batchman whose every key gets a processor from `processor`.
    @inlinable public convenience init(
        config: BatchmanConfig = BatchmanConfig(), clock: C, logger: BatchmanLogger = .standardError,
        jitter: @escaping Jitter = Batchman.fullJitter, processor: @escaping ProcessorFactory
    ) throws(BatchmanConfigurationError) {
        try self.init(config: config, processors: [Self.defaultKey: processor], clock: clock, logger: logger, jitter: jitter)
    }

    /// Submits a job; `onResult` is called once with its result.
    ///
    /// A job that cannot be accepted (a duplicate id, shutdown begun, no processor for its key,
    /// a full key under the `reject` policy) gets its failed result through `onResult` before
    /// this returns. Under the `block` policy a full key makes this call **block the calling
    /// thread** until there is room: call it from a thread of your own, or use ``enqueue(id:key:payload:onResult:)``
    /// from async code.
    /// - Returns: the job as accepted (status `submitted`), or `failed` if it was refused.
    @discardableResult
    @inlinable public func submit(
        id: String, key: String, payload: Payload,
        onResult: @escaping @Sendable (JobResult<Payload, Output>) throws -> Void
    ) -> Job<Payload> {
        submit(Job(id: id, key: key, payload: payload, submittedAt: Date()), handler: .sync(onResult))
    }

    /// Submits many jobs at once; `onResult` is called once per job with its result.
    ///
    /// The same contract as ``submit(id:key:payload:onResult:)`` job by job (duplicates,
    /// refusals, `block` backpressure that blocks the calling thread), at a lower cost: the jobs
    /// of each key take its batcher's lock once, not once per job. Jobs of one key are accepted
    /// in their order; jobs of different keys may be accepted in any order. Callers that have
    /// many jobs at hand (a chunk of input) should use it.
    @inlinable public func submit(
        contentsOf jobs: some Sequence<(id: String, key: String, payload: Payload)>,
        onResult: @escaping @Sendable (JobResult<Payload, Output>) throws -> Void
    ) {
        submit(contentsOf: jobs, handler: .sync(onResult))
    }

    /// Submits a job whose result goes to `sink`, together with the other results of its batch
    /// that go there (see ``ResultSink``); otherwise like ``submit(id:key:payload:onResult:)``.
    @discardableResult
    @inlinable public func submit(id: String, key: String, payload: Payload, to sink: some ResultSink<Payload, Output>) -> Job<Payload> {
        submit(Job(id: id, key: key, payload: payload, submittedAt: Date()), handler: .sink(sink))
    }

    /// Submits many jobs whose results go to `sink`, a batch at a time: the cheapest way in and
    /// out, for a caller with many jobs at hand and one place for their results. Otherwise like
    /// ``submit(contentsOf:onResult:)``.
    @inlinable public func submit(
        contentsOf jobs: some Sequence<(id: String, key: String, payload: Payload)>, to sink: some ResultSink<Payload, Output>
    ) {
        submit(contentsOf: jobs, handler: .sink(sink))
    }

    /// Submits jobs made by the caller (``Job/init(id:key:payload:submittedAt:attempt:)``, with
    /// their `submittedAt`) whose results go to `sink`: what a caller that reads many jobs at a
    /// time (the host, a chunk of input) uses, with no copy of its own per job.
    @inlinable public func submit(contentsOf jobs: [Job<Payload>], to sink: some ResultSink<Payload, Output>) {
        submit(jobs: jobs, handler: .sink(sink))
    }

    /// The same, for a caller whose sinks differ at run time (the host: standard output, or the
    /// connection a job came from). Not generic over the sink: an existential opened into a
    /// generic parameter keeps the whole submit path, and every batcher it makes, from being
    /// specialised (five times slower, measured).
    @inlinable public func submit(contentsOf jobs: [Job<Payload>], to sink: any ResultSink<Payload, Output>) {
        submit(jobs: jobs, handler: .sink(sink))
    }

    @inlinable func submit(
        contentsOf jobs: some Sequence<(id: String, key: String, payload: Payload)>, handler: ResultHandler<Payload, Output>
    ) {
        let now = Date()
        submit(jobs: jobs.map { Job(id: $0.id, key: $0.key, payload: $0.payload, submittedAt: now) }, handler: handler)
    }

    @inlinable func submit(jobs: [Job<Payload>], handler: ResultHandler<Payload, Output>) {
        // The jobs of each key, by index and in their order: one lock per key instead of one per job.
        var groups: [[Int]] = []
        var groupKeys: [String] = []
        var groupOfKey: [ExactString: Int] = [:]
        var current = -1  // the group of the previous job's key
        for index in jobs.indices {
            // A run of one key, and a few keys held inline (short ones), are told apart by two
            // words each, not by their bytes: this runs for every job.
            if current < 0 || !jobs[index].key.hasSameRepresentation(as: groupKeys[current]) {
                let key = jobs[index].key
                let known = groupKeys.count <= 8
                    ? groupKeys.firstIndex { $0.hasSameRepresentation(as: key) } ?? groupKeys.firstIndex { $0.hasSameBytes(as: key) }
                    : groupOfKey[ExactString(key)]
                if let group = known {
                    current = group
                } else {
                    current = groups.count
                    groupOfKey[ExactString(key)] = current
                    groupKeys.append(key)
                    groups.append([])
                }
            }
            groups[current].append(index)
        }
        for group in groups {
            var start = group.startIndex
            while start < group.endIndex {
                var next = start
                // The fast path: the key has its batcher (made now if it is new) and the instance
                // has room for the rest of the group.
                let batcher: Batcher<Payload, Output, C>? = switch lookUpBatcher(forKey: jobs[group[start]].key) {
                case .found(let found): found
                case .create(let batcherKey): createBatcher(forKey: batcherKey)
                case .refused, .beingCreated: nil
                }
                let count = group.endIndex - start
                if let batcher, shared.reserve(count: count) {
                    let (taken, refused) = batcher.submit(jobs, at: group[start...], handler: handler)
                    shared.unreserve(count: count - taken + refused)
                    next = start + taken
                }
                // Whatever the fast path did not take (a new key, a full key, shutdown) goes one by
                // one, blocking as `submit` does; then the fast path resumes with the next job.
                if next < group.endIndex {
                    _ = submit(jobs[group[next]], handler: handler)
                    next += 1
                }
                start = next
            }
        }
    }

    /// Submits a job whose result is handed to an async callback (blocking like the sync one).
    @discardableResult
    @inlinable public func submit(
        id: String, key: String, payload: Payload,
        onResult: @escaping @Sendable (JobResult<Payload, Output>) async throws -> Void
    ) -> Job<Payload> {
        submit(Job(id: id, key: key, payload: payload, submittedAt: Date()), handler: .async(onResult))
    }

    /// Submits a job like ``submit(id:key:payload:onResult:)``, but waits for room in a full key
    /// by suspending the task rather than blocking its thread.
    @discardableResult
    @inlinable public func enqueue(
        id: String, key: String, payload: Payload,
        onResult: @escaping @Sendable (JobResult<Payload, Output>) throws -> Void
    ) async -> Job<Payload> {
        var job = Job(id: id, key: key, payload: payload, submittedAt: Date())
        while true {
            switch attempt(job, handler: .sync(onResult)) {
            case .accepted: return job
            case .refused:
                job.status = .failed
                return job
            case .full(let seen): await shared.capacity.wait(after: seen)
            }
        }
    }

    /// Submits a job and waits for its result (suspending, not blocking, while a key is full).
    ///
    /// Cancelling the waiting task does not withdraw the job: once accepted it is processed.
    @inlinable public func submit(id: String, key: String, payload: Payload) async -> JobResult<Payload, Output> {
        let job = Job(id: id, key: key, payload: payload, submittedAt: Date())
        return await withUnsafeContinuation { continuation in
            guard case .full(let seen) = attempt(job, handler: .continuation(continuation)) else { return }
            // The rare slow path: a full key under `block`. Wait for room in a task.
            Task {
                var seen = seen
                while true {
                    await shared.capacity.wait(after: seen)
                    guard case .full(let next) = attempt(job, handler: .continuation(continuation)) else { return }
                    seen = next
                }
            }
        }
    }

    /// The job with `id` under `key` (and `scope`, see ``JobTag``) while it is submitted or
    /// processing; nil otherwise.
    @inlinable public func getJob(key: String, id: String, scope: UInt32 = 0) -> Job<Payload>? {
        let batcher = state.withLock { $0.batchers[ExactString(batcherKey(for: key))]?.batcher }
        return batcher?.job(JobIdentity(key: key, id: id, scope: scope))
    }

    /// Starts none of `key`'s batches for `duration`: what a processor asks for when its backend
    /// is down ("the database is unavailable; ask again in 5 s"). Batches already running go on;
    /// jobs are still accepted and batched, within `maxPending`, and start once the pause ends.
    /// A later call replaces the pause; `.zero` ends it at once. A shutdown's drain waits for it
    /// (within `shutdownTimeout`), as it waits for retries.
    /// - Returns: false if Batchman has no batcher for `key` (it never had a job).
    @discardableResult @inlinable public func pause(key: String, for duration: Duration) -> Bool {
        guard let batcher = state.withLock({ $0.batchers[ExactString(batcherKey(for: key))]?.batcher }) else { return false }
        batcher.pause(for: duration)
        return true
    }

    /// Where this instance's batch ids come from (to share with an instance that replaces it).
    @inlinable public var batchIds: BatchIdGenerator { shared.batchIds }

    /// The counters of the whole instance and of each key, now.
    @inlinable public func statistics() -> BatchmanStatistics {
        let batchers = state.withLock { $0.batchers.compactMap(\.value.batcher) }
        // Canonically equivalent keys are different keys but equal `String`s: their counters add up here.
        let perKey = Dictionary(batchers.map { ($0.key, $0.statistics) }, uniquingKeysWith: +)
        var total = perKey.values.reduce(BatcherStatistics(), +)
        total.failed.merge(shared.refusals.withLock { $0 }, uniquingKeysWith: +)
        return BatchmanStatistics(total: total, perKey: perKey)
    }

    /// A stream of lifecycle events from now on. Each call makes a new, independent stream;
    /// streams end when shutdown completes.
    ///
    /// - Parameter bufferingPolicy: what to keep when the consumer falls behind.
    @inlinable public func events(
        bufferingPolicy: AsyncStream<BatchmanEvent>.Continuation.BufferingPolicy = .unbounded
    ) -> AsyncStream<BatchmanEvent> {
        shared.events.subscribe(bufferingPolicy: bufferingPolicy)
    }

    /// Stops accepting jobs, flushes every key, and returns once every accepted job has its result.
    ///
    /// Jobs submitted after shutdown begins fail with `shutdown_batch`. Retries still happen,
    /// without their backoff. With a `shutdownTimeout`, jobs still unfinished when it passes
    /// fail with `shutdown_batch` (their processor calls' late outcomes are dropped). Calling it
    /// again waits for the same drain.
    @inlinable public func shutdown() async {
        await shutdown(timeout: config.shutdownTimeout, cause: "shutdown")
    }

    /// Shuts down like ``shutdown()``, but gives the drain `timeout` (nil: no limit); jobs still
    /// unfinished then fail with `shutdown_batch` and a message that names `cause` ("reload"
    /// for a host retiring a configuration).
    @inlinable public func shutdown(timeout: Duration?, cause: String) async {
        let batchers = state.withLock { state in
            state.isShuttingDown = true
            return state.batchers.values.compactMap(\.batcher)
        }
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await Self.drain(batchers)
                return true
            }
            if let timeout {
                group.addTask { [clock] in
                    do {
                        try await clock.sleep(until: clock.now.advanced(by: timeout), tolerance: nil)
                        return false
                    } catch {
                        return true  // cancelled: the drain finished first
                    }
                }
            }
            if await group.next() == false {
                let timedOut = "\(cause) timed out after \(timeout!)"
                logger.log(.warning, "\(timedOut): failing every unfinished job with shutdown_batch")
                let message = "\(timedOut); the job did not finish"
                for batcher in batchers { batcher.abandon(message) }
            }
            group.cancelAll()
        }
        scheduler.stop()
        shared.events.finish()
    }

    /// Stops at once, for when results can no longer reach anyone: refuses new jobs and fails
    /// every job still held with `shutdown_batch` and `message`, without starting another batch
    /// or waiting for calls still running (their late outcomes are dropped).
    @inlinable public func abandon(_ message: String) async {
        let batchers = state.withLock { state in
            state.isShuttingDown = true
            return state.batchers.values.compactMap(\.batcher)
        }
        for batcher in batchers { batcher.abandon(message) }
        scheduler.stop()
        shared.events.finish()
    }

    // MARK: - Internals

    /// Drains every batcher and returns once all have drained: one continuation and a countdown,
    /// not a task per key, so shutting down 100,000 keys takes linear time.
    @inlinable static func drain(_ batchers: [Batcher<Payload, Output, C>]) async {
        guard !batchers.isEmpty else { return }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let countdown = Countdown(batchers.count) { done.resume() }
            for batcher in batchers { batcher.drain { countdown.tick() } }
        }
    }

    /// The shared default policy, or one of the key's own when its settings differ.
    @inlinable func policy(forKey key: String) -> KeyPolicy {
        defaultPolicy.with(config.config(forKey: key))
    }

    @inlinable func batcherKey(for key: String) -> String {
        config.useInstancePerKey ? key : Self.defaultKey
    }

    /// Submits `job`, blocking the calling thread while its key is full under `block`; returns
    /// it as accepted, or marked failed if it was refused.
    @inlinable func submit(_ job: consuming Job<Payload>, handler: ResultHandler<Payload, Output>) -> Job<Payload> {
        while true {
            switch attempt(job, handler: handler) {
            case .accepted: return job
            case .refused:
                job.status = .failed
                return job
            case .full(let seen): shared.capacity.waitBlocking(after: seen)
            }
        }
    }

    /// What one try at submitting a job came to. It carries no job: a whole job in an enum is
    /// copied and destroyed through its value witnesses (hundreds of instructions a time, by
    /// callgrind), once per submit.
    @usableFromInline enum Attempt {
        case accepted
        /// Refused, with the handler already answered.
        case refused
        /// The key or the instance is full under `block`: wait past this capacity generation.
        case full(seen: UInt64)
    }

    /// One try at submitting `job`: the step shared by the blocking and the suspending paths.
    @inlinable func attempt(_ job: Job<Payload>, handler: ResultHandler<Payload, Output>) -> Attempt {
        let seen = shared.capacity.generation
        let batcher: Batcher<Payload, Output, C>
        switch lookUpBatcher(forKey: job.key) {
        case .found(let found):
            batcher = found
        case .refused(let reason, let message):
            shared.refuse(job, reason: reason, message: message, handler: handler, debug: false)
            return .refused
        case .beingCreated:
            return .full(seen: seen)  // another submitter is making the key's processor: wait for it
        case .create(let batcherKey):
            guard let made = createBatcher(forKey: batcherKey) else { return .full(seen: seen) }
            batcher = made
        }
        if shared.reserve() {
            switch batcher.submit(job, handler: handler) {
            case .accepted:
                return .accepted
            case .refused:
                shared.unreserve()
                return .refused
            case .full:
                shared.unreserve()
            }
        }
        guard batcher.config.overflow == .reject else { return .full(seen: seen) }
        let limit = shared.maxPendingTotal.map { "the instance's maxPendingTotal (\($0))" } ?? "its maxPending"
        let message = "key \"\(job.key)\" is full: \(batcher.config.maxPending.map { "maxPending \($0)" } ?? limit) reached; try again later"
        shared.refuse(job, reason: .overloaded, message: message, handler: handler, debug: batcher.config.debug)
        return .refused
    }

    @usableFromInline enum Lookup {
        case found(Batcher<Payload, Output, C>)
        case refused(FailureReason, String)
        /// Another submitter is making this key's processor.
        case beingCreated
        /// The key has no batcher yet and this caller makes it: its slot now says `creating`.
        case create(String)
    }

    /// The batcher for `key`, or what to do instead. One short lock; no factory runs under it.
    @inlinable func lookUpBatcher(forKey key: String) -> Lookup {
        let batcherKey = batcherKey(for: key)
        return state.withLock { state -> Lookup in
            if state.isShuttingDown {
                return .refused(.shutdownBatch, "Batchman is shutting down; the job was not accepted")
            }
            if let lastFound = state.lastFound, lastFound.key.hasSameBytes(as: batcherKey) { return .found(lastFound.batcher) }
            switch state.batchers[ExactString(batcherKey)] {
            case .ready(let batcher):
                state.lastFound = (batcherKey, batcher)
                return .found(batcher)
            case .failed(let message): return .refused(.error, message)
            case .creating: return .beingCreated
            case nil:
                state.batchers[ExactString(batcherKey)] = .creating
                return .create(batcherKey)
            }
        }
    }

    /// Makes the batcher for `batcherKey`, whose slot this caller set to `creating`. The factory
    /// runs outside the lock, so a slow one (a plugin's `create`) stalls no other key. Returns
    /// nil if the key cannot take jobs after all (the factory threw, or shutdown began); the
    /// caller tries again and finds out why.
    @inlinable func createBatcher(forKey batcherKey: String) -> Batcher<Payload, Output, C>? {
        let factory = factories[ExactString(batcherKey)] ?? factories[ExactString(Self.defaultKey)]!
        let slot: BatcherSlot
        do {
            let processor = try factory(batcherKey)
            slot = .ready(Batcher(key: batcherKey, policy: policy(forKey: batcherKey), processor: processor, context: context))
        } catch {
            slot = .failed("could not create the processor for key \"\(batcherKey)\": \(error)")
        }
        let isShuttingDown = state.withLock { state in
            state.batchers[ExactString(batcherKey)] = slot
            return state.isShuttingDown
        }
        shared.capacity.open()  // wake submitters that waited for this key
        return isShuttingDown ? nil : slot.batcher
    }
}

extension Batchman where C == ContinuousClock {
    /// Creates a Batchman on the real clock whose keys get their processors from `processors`.
    @inlinable public convenience init(
        config: BatchmanConfig = BatchmanConfig(), processors: [String: ProcessorFactory],
        logger: BatchmanLogger = .standardError, payloadSize: (@Sendable (Payload) -> Int)? = nil,
        batchIds: BatchIdGenerator = BatchIdGenerator()
    ) throws(BatchmanConfigurationError) {
        try self.init(config: config, processors: processors, clock: ContinuousClock(), logger: logger, payloadSize: payloadSize,
                      batchIds: batchIds)
    }

    /// Creates a Batchman on the real clock whose every key gets a processor from `processor`.
    @inlinable public convenience init(
        config: BatchmanConfig = BatchmanConfig(), logger: BatchmanLogger = .standardError,
        processor: @escaping ProcessorFactory
    ) throws(BatchmanConfigurationError) {
        try self.init(config: config, processors: [Self.defaultKey: processor], clock: ContinuousClock(), logger: logger)
    }
}
