import Batchman
import Synchronization

/// A processor for tests: records every batch it is given, answers with a closure you choose,
/// and, when gated, holds each batch until the test releases it.
public final class TestProcessor<Payload: Sendable, Output: Sendable>: BatchProcessor, Sendable {
    public typealias Respond = @Sendable (Batch<Payload>) async throws -> [JobOutcome<Output>]

    /// Every batch the processor was given, in call order.
    public let batches = RecordLog<Batch<Payload>>()
    private let respond: Respond
    private let gate: Mutex<Gate>

    private struct Gate {
        let isClosed: Bool
        /// Batches waiting for a release.
        var held: [CheckedContinuation<Void, Never>] = []
        /// Releases given before a batch arrived to use them.
        var credits = 0
    }

    /// - Parameters:
    ///   - gated: hold every batch until ``release(_:)`` lets it go.
    ///   - respond: the outcomes for a batch; it may throw.
    public init(gated: Bool = false, respond: @escaping Respond) {
        self.respond = respond
        self.gate = Mutex(Gate(isClosed: gated))
    }

    public func process(_ batch: Batch<Payload>) async throws -> [JobOutcome<Output>] {
        batches.append(batch)
        await withCheckedContinuation { continuation in
            let proceed = gate.withLock { gate -> Bool in
                guard gate.isClosed else { return true }
                guard gate.credits == 0 else {
                    gate.credits -= 1
                    return true
                }
                gate.held.append(continuation)
                return false
            }
            if proceed { continuation.resume() }
        }
        return try await respond(batch)
    }

    /// Lets `count` held (or future) batches through a gated processor.
    public func release(_ count: Int = 1) {
        let released = gate.withLock { gate -> [CheckedContinuation<Void, Never>] in
            let now = Array(gate.held.prefix(count))
            gate.held.removeFirst(now.count)
            gate.credits += count - now.count
            return now
        }
        for continuation in released { continuation.resume() }
    }
}

extension TestProcessor where Output == Payload {
    /// Completes every job with its own payload.
    public static func echo(gated: Bool = false) -> TestProcessor {
        TestProcessor(gated: gated) { batch in batch.jobs.map { .completed($0, $0.payload) } }
    }
}

/// Collects the results handed to callbacks so a test can await them.
public final class ResultCollector<Payload: Sendable, Output: Sendable>: Sendable {
    public let results = RecordLog<JobResult<Payload, Output>>()

    public init() {}

    /// A result callback that records into this collector.
    public var callback: @Sendable (JobResult<Payload, Output>) -> Void {
        { [results] in results.append($0) }
    }

    /// The results once there are at least `count`.
    @discardableResult
    public func wait(forCount count: Int) async -> [JobResult<Payload, Output>] {
        await results.wait(forCount: count)
    }
}
