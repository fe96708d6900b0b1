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
    /// Not a strong reference: every job of a host shares one sink, and a reference count
    /// changed per job by the submitting thread and the delivering ones was the hottest cache
    /// line of the host. The batcher holding the job keeps the sink alive (``SinkHolds``).
    case sink(UnownedSink)

    @usableFromInline struct UnownedSink: Sendable {
        // unowned(unsafe): kept alive by the batcher's SinkHolds while a job refers to it, and by
        // the caller of submit until then.
        @usableFromInline unowned(unsafe) let sink: any ResultSink<Payload, Output>

        @inlinable init(_ sink: any ResultSink<Payload, Output>) {
            self.sink = sink
        }
    }

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
        case .sink(let reference):
            reference.sink.receive([result])
        case .async:
            Task { await deliver(result, logger: logger) }
        }
    }

    /// Hands each result to its handler without suspending; consecutive results for one sink
    /// reach it in one call.
    @inlinable static func deliverNow(_ results: some Sequence<(Self, JobResult<Payload, Output>)>, logger: BatchmanLogger) {
        var sink: (any ResultSink<Payload, Output>)?
        var forSink: [JobResult<Payload, Output>] = []
        for (handler, result) in results {
            if case .sink(let reference) = handler {
                let next = reference.sink
                if let current = sink, current !== next {
                    current.receive(forSink)
                    forSink.removeAll(keepingCapacity: true)
                }
                sink = next
                forSink.append(result)
                continue
            }
            handler.deliverNow(result, logger: logger)
        }
        if let sink, !forSink.isEmpty { sink.receive(forSink) }
    }

    @inlinable static func logFailure(of result: JobResult<Payload, Output>, _ error: any Error, logger: BatchmanLogger) {
        logger.log(.error, "result callback for job \"\(result.id)\" (key \"\(result.key)\") threw: \(error)")
    }
}
