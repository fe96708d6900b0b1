extension Batcher {
    /// The processor's outcomes, by the position of the job each decided.
    @usableFromInline enum MatchedOutcomes: Sendable {
        /// One per job, in the batch's order: what almost every processor returns.
        case inOrder([JobOutcome<Output>])
        case byPosition([JobOutcome<Output>?])
        /// The call threw, or Batchman decided (a timeout, a shutdown).
        case none

        // Fields are read through the arrays, never by taking a whole outcome out: a whole
        // outcome is copied through its value witnesses (see Batchman.Attempt).

        /// The output of the outcome that decided the job at `position`.
        @inlinable func output(at position: Int) -> Output? {
            switch self {
            case .inOrder(let outcomes): outcomes[position].result
            case .byPosition(let outcomes): outcomes[position]?.result
            case .none: nil
            }
        }

        /// When the job at `position` finished, as its outcome says (seconds since 1970).
        @inlinable func completedAtSeconds(at position: Int) -> Double? {
            switch self {
            case .inOrder(let outcomes): outcomes[position].completedAtSeconds
            case .byPosition(let outcomes): outcomes[position]?.completedAtSeconds
            case .none: nil
            }
        }
    }

    /// Lines `outcomes` up with `batch.jobs`: one verdict per job, and the outcome that decided
    /// it. Processors usually answer in order, so that is checked first and costs no hashing;
    /// otherwise outcomes are matched by identity.
    @inlinable func match(
        _ outcomes: [JobOutcome<Output>], to batch: Batch<Payload>, warnings: inout [String]
    ) -> (FlightEngine.Verdicts, MatchedOutcomes) {
        let jobs = batch.jobs
        // Fields are compared through the arrays, never by binding whole elements: a whole job or
        // outcome is copied through its generic value witness, which showed in profiles.
        var inOrder = outcomes.count == jobs.count
        var allCompleted = true
        // A processor that answers by position (the host's plugins) is taken at its word: no
        // ids are compared again.
        let byPosition = inOrder && processor.answersInOrder
        for index in outcomes.indices where inOrder {
            inOrder = byPosition
                || (outcomes[index].id.hasSameBytes(as: jobs[index].id) && outcomes[index].key.hasSameBytes(as: jobs[index].key))
            allCompleted = allCompleted && outcomes[index].status != .failed
        }
        if inOrder {
            return (allCompleted ? .allCompleted : .each(outcomes.map(Self.verdict)), .inOrder(outcomes))
        }
        // By key and id. Jobs of different scopes may share both in one batch: an outcome goes
        // to the first of them still undecided (`sameAfter` chains them in batch order).
        var firstByIdentity: [JobIdentity: Int] = [:]
        firstByIdentity.reserveCapacity(jobs.count)
        var sameAfter = [Int](repeating: -1, count: jobs.count)
        var lastByIdentity: [JobIdentity: Int] = [:]
        for index in jobs.indices {
            let identity = JobIdentity(key: jobs[index].key, id: jobs[index].id)
            if let last = lastByIdentity[identity] { sameAfter[last] = index } else { firstByIdentity[identity] = index }
            lastByIdentity[identity] = index
        }
        var decided = [JobOutcome<Output>?](repeating: nil, count: jobs.count)
        for outcome in outcomes {
            guard var index = firstByIdentity[outcome.identity] else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a result for job \"\(outcome.id)\" (key \"\(outcome.key)\"), which is not in the batch")
                continue
            }
            while decided[index] != nil, sameAfter[index] >= 0 { index = sameAfter[index] }
            guard decided[index] == nil else {
                warnings.append("batch \(batch.id) (key \"\(key)\"): ignoring a second result for job \"\(outcome.id)\"")
                continue
            }
            decided[index] = outcome
        }
        let verdicts = decided.map { $0.map(Self.verdict) ?? .transient("No result returned for job", .error) }
        return (.each(verdicts), .byPosition(decided))
    }

    @inlinable static func verdict(_ outcome: JobOutcome<Output>) -> FlightEngine.Verdict {
        guard outcome.status == .failed else { return .completed }
        let message = outcome.errorMessage ?? "Processor failed the job"
        let reason = outcome.failureReason ?? .error
        guard outcome.isRetryable else { return .failed(message, reason) }
        return .transient(message, reason, retryAfter: max(.zero, outcome.retryAfter ?? .zero))
    }
}
