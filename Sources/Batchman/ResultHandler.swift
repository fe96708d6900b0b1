/// How a job's result reaches whoever submitted it.
///
/// `UnsafeContinuation` rather than `CheckedContinuation`: the checked one is a resilient type,
/// so every record and delivery holding a handler would lose its fixed layout and copy through
/// runtime generic metadata (a third of the hot path's cycles, by perf). Each handler is
/// resumed exactly once by construction: a job gets one delivery (see the exactly-once tests).
@usableFromInline enum ResultHandler<Payload: Sendable, Output: Sendable>: Sendable {
    case sync(@Sendable (JobResult<Payload, Output>) throws -> Void)
    case async(@Sendable (JobResult<Payload, Output>) async throws -> Void)
    case continuation(UnsafeContinuation<JobResult<Payload, Output>, Never>)
    /// A batch holds its sink once per run of jobs that report to it (see ``HandlerRuns``),
    /// not once per job.
    case sink(any ResultSink<Payload, Output>)

    /// Hands `result` over, awaiting an async callback; a throwing callback is logged and
    /// affects nothing else.
    @inlinable func deliver(_ result: JobResult<Payload, Output>, logger: BatchmanLogger) async {
        guard case .async(let callback) = self else { return deliverNow(result, logger: logger) }
        do {
            try await callback(result)
        } catch {
            Self.logFailure(of: result, error, logger: logger)
        }
    }

    /// Hands `result` over without suspending; an async callback runs in a task of its own.
    @inlinable func deliverNow(_ result: JobResult<Payload, Output>, logger: BatchmanLogger) {
        switch self {
        case .sync(let callback):
            do {
                try callback(result)
            } catch {
                Self.logFailure(of: result, error, logger: logger)
            }
        case .continuation(let continuation):
            continuation.resume(returning: result)
        case .sink(let sink):
            sink.receive([result])
        case .async:
            Task { await deliver(result, logger: logger) }
        }
    }

    @inlinable static func logFailure(of result: JobResult<Payload, Output>, _ error: any Error, logger: BatchmanLogger) {
        logger.log(.error, "result callback for job \"\(result.id)\" (key \"\(result.key)\") threw: \(error)")
    }
}
