import FoundationEssentials
import Synchronization

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

    private struct State {
        var batchers: [String: Batcher<Payload, Output, C>] = [:]
        var isShuttingDown = false
    }

    /// The name of the one batcher all keys share when `useInstancePerKey` is false, and of the
    /// factory used for keys without one of their own.
    public static var defaultKey: String { "default" }

    public let config: BatchmanConfig
    private let factories: [String: ProcessorFactory]
    private let state = Mutex(State())
    private let scheduler: FlushScheduler<C>
    private let batchIds = BatchIdGenerator()
    private let broadcaster = EventBroadcaster()
    private let logger: BatchmanLogger

    /// Creates a Batchman whose keys get their processors from `processors`, which must have a
    /// factory for ``defaultKey``; keys without a factory of their own use it.
    ///
    /// - Throws: ``BatchmanConfigurationError`` with the seed's message for an invalid config.
    public init(
        config: BatchmanConfig = BatchmanConfig(), processors: [String: ProcessorFactory],
        clock: C, logger: BatchmanLogger = .standardError
    ) throws(BatchmanConfigurationError) {
        try config.validate(processorKeys: processors.keys, hasDefaultProcessor: processors[Self.defaultKey] != nil)
        self.config = config
        self.factories = processors
        self.scheduler = FlushScheduler(clock: clock)
        self.logger = logger
    }

    /// Creates a Batchman whose every key gets a processor from `processor`.
    public convenience init(
        config: BatchmanConfig = BatchmanConfig(), clock: C, logger: BatchmanLogger = .standardError,
        processor: @escaping ProcessorFactory
    ) throws(BatchmanConfigurationError) {
        try self.init(config: config, processors: [Self.defaultKey: processor], clock: clock, logger: logger)
    }

    /// Submits a job; `onResult` is called once with its result.
    ///
    /// A job that cannot be accepted (a duplicate id, shutdown begun, no processor for its key)
    /// gets its failed result through `onResult` before this returns.
    /// - Returns: the job as accepted (status `submitted`), or `failed` if it was refused.
    @discardableResult
    public func submit(
        id: String, key: String, payload: Payload,
        onResult: @escaping @Sendable (JobResult<Payload, Output>) throws -> Void
    ) -> Job<Payload> {
        submit(Job(id: id, key: key, payload: payload, submittedAt: Date()), handler: .sync(onResult))
    }

    /// Submits a job whose result is handed to an async callback.
    @discardableResult
    public func submit(
        id: String, key: String, payload: Payload,
        onResult: @escaping @Sendable (JobResult<Payload, Output>) async throws -> Void
    ) -> Job<Payload> {
        submit(Job(id: id, key: key, payload: payload, submittedAt: Date()), handler: .async(onResult))
    }

    /// Submits a job and waits for its result.
    ///
    /// Cancelling the waiting task does not withdraw the job: once accepted it is processed.
    public func submit(id: String, key: String, payload: Payload) async -> JobResult<Payload, Output> {
        let job = Job(id: id, key: key, payload: payload, submittedAt: Date())
        return await withCheckedContinuation { continuation in
            _ = submit(job, handler: .continuation(continuation))
        }
    }

    /// The job with `id` under `key` while it is submitted or processing; nil otherwise.
    public func getJob(key: String, id: String) -> Job<Payload>? {
        let batcher = state.withLock { $0.batchers[batcherKey(for: key)] }
        return batcher?.job(JobIdentity(key: key, id: id))
    }

    /// A stream of lifecycle events from now on. Each call makes a new, independent stream;
    /// streams end when shutdown completes.
    ///
    /// - Parameter bufferingPolicy: what to keep when the consumer falls behind.
    public func events(
        bufferingPolicy: AsyncStream<BatchmanEvent>.Continuation.BufferingPolicy = .unbounded
    ) -> AsyncStream<BatchmanEvent> {
        broadcaster.subscribe(bufferingPolicy: bufferingPolicy)
    }

    /// Stops accepting jobs, flushes every key, and returns once every accepted job has its result.
    ///
    /// Jobs submitted after shutdown begins fail with `shutdown_batch`. Calling it again waits
    /// for the same drain.
    public func shutdown() async {
        let batchers = state.withLock { state in
            state.isShuttingDown = true
            return Array(state.batchers.values)
        }
        await withTaskGroup(of: Void.self) { group in
            for batcher in batchers { group.addTask { await batcher.drain() } }
        }
        scheduler.stop()
        broadcaster.finish()
    }

    // MARK: - Internals

    private func batcherKey(for key: String) -> String {
        config.useInstancePerKey ? key : Self.defaultKey
    }

    private func submit(_ job: Job<Payload>, handler: ResultHandler<Payload, Output>) -> Job<Payload> {
        let lookup = state.withLock { state -> Result<Batcher<Payload, Output, C>, BatcherLookupError> in
            batcher(forKey: job.key, in: &state)
        }
        switch lookup {
        case .success(let batcher):
            return batcher.submit(job, handler: handler)
        case .failure(let refusal):
            broadcaster.emit(.jobRejected(key: job.key, id: job.id, reason: refusal.reason))
            handler.deliverNow(.failure(job, reason: refusal.reason, message: refusal.message, at: Date()), logger: logger)
            var refused = job
            refused.status = .failed
            return refused
        }
    }

    private struct BatcherLookupError: Error {
        let reason: FailureReason
        let message: String
    }

    /// The batcher for `key`, made on first use. The factory runs under the lock so that a key
    /// never gets two processor instances; factories should be quick.
    private func batcher(forKey key: String, in state: inout State) -> Result<Batcher<Payload, Output, C>, BatcherLookupError> {
        if state.isShuttingDown {
            return .failure(BatcherLookupError(reason: .shutdownBatch, message: "Batchman is shutting down; the job was not accepted"))
        }
        let batcherKey = batcherKey(for: key)
        if let batcher = state.batchers[batcherKey] { return .success(batcher) }
        let factory = factories[batcherKey] ?? factories[Self.defaultKey]!
        let processor: any BatchProcessor<Payload, Output>
        do {
            processor = try factory(batcherKey)
        } catch {
            return .failure(BatcherLookupError(reason: .error, message: "could not create the processor for key \"\(batcherKey)\": \(error)"))
        }
        let batcher = Batcher(
            key: batcherKey, config: config.config(forKey: batcherKey), processor: processor,
            scheduler: scheduler, batchIds: batchIds, events: broadcaster, logger: logger)
        state.batchers[batcherKey] = batcher
        return .success(batcher)
    }
}

extension Batchman where C == ContinuousClock {
    /// Creates a Batchman on the real clock whose keys get their processors from `processors`.
    public convenience init(
        config: BatchmanConfig = BatchmanConfig(), processors: [String: ProcessorFactory],
        logger: BatchmanLogger = .standardError
    ) throws(BatchmanConfigurationError) {
        try self.init(config: config, processors: processors, clock: ContinuousClock(), logger: logger)
    }

    /// Creates a Batchman on the real clock whose every key gets a processor from `processor`.
    public convenience init(
        config: BatchmanConfig = BatchmanConfig(), logger: BatchmanLogger = .standardError,
        processor: @escaping ProcessorFactory
    ) throws(BatchmanConfigurationError) {
        try self.init(config: config, processors: [Self.defaultKey: processor], clock: ContinuousClock(), logger: logger)
    }
}
