/// The result handlers of a batch's jobs, in the jobs' order, one entry per run of jobs that
/// share a handler.
///
/// Why runs: a caller that submits many jobs at once (``Batchman/submit(contentsOf:to:)``, the
/// host) gives them all one handler, and a batch of them holds it once, with one reference
/// count for the batch rather than one per job (a count changed per job by the submitting
/// thread and the settling one was the hottest cache line of the host). A job submitted alone
/// to the sink of the job before it joins that job's run.
@usableFromInline struct HandlerRuns<Payload: Sendable, Output: Sendable>: Sendable {
    @usableFromInline typealias Handler = ResultHandler<Payload, Output>

    @usableFromInline struct Run: Sendable {
        @usableFromInline let handler: Handler
        /// The position just past the run's last job.
        @usableFromInline var end: Int

        @inlinable init(handler: Handler, end: Int) {
            self.handler = handler
            self.end = end
        }
    }

    @usableFromInline var runs: [Run] = []
    /// The sink of the last run, when it is one: the next job to it extends the run.
    @usableFromInline var lastSink: ObjectIdentifier?

    @inlinable init() {}

    /// The number of jobs.
    @inlinable var count: Int { runs.last?.end ?? 0 }

    @inlinable var isEmpty: Bool { runs.isEmpty }

    /// Adds the handler of the next job.
    @inlinable mutating func append(_ handler: Handler) {
        if let lastSink, case .sink(let sink) = handler, ObjectIdentifier(sink) == lastSink {
            runs[runs.count - 1].end += 1
            return
        }
        runs.append(Run(handler: handler, end: count + 1))
        if case .sink(let sink) = handler { lastSink = ObjectIdentifier(sink) } else { lastSink = nil }
    }

    /// Adds the handler of the next job, which is the last job's handler: what a caller that
    /// submits many jobs with one handler says, so that no handler is compared or copied.
    @inlinable mutating func appendSameAsLast() {
        runs[runs.count - 1].end += 1
    }

    /// The handler of the job at `position`.
    @inlinable func handler(at position: Int) -> Handler {
        // Binary search for the first run that ends past `position`.
        var low = 0
        var high = runs.count - 1
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].end > position { high = middle } else { low = middle + 1 }
        }
        return runs[low].handler
    }
}
