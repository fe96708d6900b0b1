/// The partitions this host owns now and the jobs it fetched from them that are not yet
/// acknowledged: the state machine behind a scale-out host's Mutex. Pure: each event returns
/// what to do about it, outside the lock.
///
/// A partition is held under one lease revision, its *generation*: every delivery and every
/// acknowledgement is checked against it, so that after a lease is lost (or given up, and taken
/// again under a new revision) nothing fetched under the old one is acknowledged.
struct PartitionTable {
    enum Phase: Equatable {
        /// Pull requests go out while there is room.
        case fetching
        /// Handing the partition over (rebalance, or a stop): no more pulls; the lease is
        /// released once every job fetched has its result stored and acknowledged.
        case draining
    }

    struct Partition: Equatable {
        var generation: UInt64
        var consumer: String
        var phase = Phase.fetching
        /// Jobs fetched under this generation and not yet acknowledged.
        var inFlight = 0
        var pull: Pull?
        /// Monotonic nanoseconds: past this the lease may be another's, so nothing more is
        /// fetched or acknowledged, whether or not the coordinator has noticed yet.
        var validUntil: UInt64
        /// Acknowledgements of results stored past `validUntil`: sent once the lease is renewed
        /// (then it was this host's all along), dropped if it is lost.
        var heldAcknowledgements: [String] = []
        /// Jobs up to this stream sequence may have reached the previous owner's plugins (its
        /// consumer delivered them): they are redeliveries here.
        var redeliveredThrough: UInt64 = 0
    }

    /// A pull request out: its reply subject's token, what it may still deliver, and when it
    /// is given up on (monotonic nanoseconds).
    struct Pull: Equatable {
        var token: UInt64
        var remaining: Int
        var deadline: UInt64
    }

    struct Job: Equatable {
        var partition: Int
        var generation: UInt64
        var replyTo: String
        /// The key as its subject has it: where an answer the host makes itself (a payload that
        /// is not a job) goes.
        var keyToken: Substring
        /// When it was delivered or last said to be in progress (monotonic nanoseconds).
        var touchedAt: UInt64
    }

    enum Delivery: Equatable {
        /// A new job: submit it.
        case submit
        /// A job already running (delivered again after the ack wait, or by a new consumer of
        /// the same partition); nothing to submit.
        case running
        /// Not a partition fetched now (lost, draining, another generation): dropped unacked;
        /// whoever owns the partition gets it again.
        case dropped
    }

    struct Answered: Equatable {
        /// Acknowledge on this reply subject (nil: the job's lease is gone, so not acked).
        var acknowledge: String?
        /// This partition is drained: release its lease.
        var drained: Int?
        /// The answer made room for the partition's next pull request (and none is out): wake
        /// the loop to send it.
        var wantsPull = false
    }

    /// Jobs asked for by one pull request, and in flight per partition at most.
    let batch: Int
    let cap: Int

    init(batch: Int = 1000, cap: Int = 2000) {
        self.batch = batch
        self.cap = cap
    }

    /// A partition sends its next pull once this much room is free.
    var pullThreshold: Int { max(1, batch / 2) }

    private(set) var partitions: [Int: Partition] = [:]
    private var jobs: [UInt64: Job] = [:]

    var inFlight: Int { jobs.count }

    mutating func acquired(_ partition: Int, generation: UInt64, consumer: String, validUntil: UInt64, redeliveredThrough: UInt64 = 0) {
        partitions[partition] = Partition(generation: generation, consumer: consumer, validUntil: validUntil,
                                          redeliveredThrough: redeliveredThrough)
    }

    /// The lease was renewed: it holds until `validUntil`. Returns the acknowledgements held
    /// meanwhile, to send now.
    mutating func renewed(_ partition: Int, validUntil: UInt64) -> [String] {
        guard partitions[partition] != nil else { return [] }
        partitions[partition]!.validUntil = validUntil
        defer { partitions[partition]!.heldAcknowledgements = [] }
        return partitions[partition]!.heldAcknowledgements
    }

    /// Starts handing `partition` over; true if it is drained already.
    mutating func drain(_ partition: Int) -> Bool {
        guard partitions[partition] != nil else { return false }
        partitions[partition]!.phase = .draining
        return partitions[partition]!.inFlight == 0
    }

    /// The lease is gone (taken, or not renewed in time): nothing more is fetched or
    /// acknowledged there. Returns the pull's token to cancel, if one was out.
    mutating func lose(_ partition: Int) -> UInt64? {
        partitions.removeValue(forKey: partition)?.pull?.token
    }

    /// A drained partition was released.
    mutating func released(_ partition: Int) {
        partitions.removeValue(forKey: partition)
    }

    var drainedPartitions: [Int] {
        partitions.filter { $0.value.phase == .draining && $0.value.inFlight == 0 && $0.value.heldAcknowledgements.isEmpty }.map(\.key).sorted()
    }

    func owns(_ partition: Int) -> Bool { partitions[partition] != nil }

    /// A message from a pull request of `partition` under `generation`.
    mutating func delivered(partition: Int, generation: UInt64, sequence: UInt64, replyTo: String, keyToken: Substring = "", now: UInt64) -> Delivery {
        // Past `validUntil` too: the pull went out while the lease was surely this host's, and
        // dropping the job would have it delivered again after the ack wait, behind later jobs
        // of its key. Its result waits for the renewal (or is dropped with the lease).
        guard var owned = partitions[partition], owned.generation == generation else { return .dropped }
        if var pull = owned.pull {
            pull.remaining -= 1
            owned.pull = pull.remaining > 0 ? pull : nil
        }
        defer { partitions[partition] = owned }
        guard owned.phase == .fetching else { return .dropped }
        if let running = jobs[sequence] {
            if running.generation != generation {
                // Fetched under an older lease and still running: it is this generation's now.
                jobs[sequence] = Job(partition: partition, generation: generation, replyTo: replyTo, keyToken: keyToken, touchedAt: now)
                owned.inFlight += 1
            }
            return .running
        }
        jobs[sequence] = Job(partition: partition, generation: generation, replyTo: replyTo, keyToken: keyToken, touchedAt: now)
        owned.inFlight += 1
        return .submit
    }

    /// The job fetched as `sequence` has its result stored.
    mutating func answered(_ sequence: UInt64, now: UInt64) -> Answered {
        guard let job = jobs.removeValue(forKey: sequence), var owned = partitions[job.partition], owned.generation == job.generation else {
            return Answered(acknowledge: nil, drained: nil)
        }
        owned.inFlight -= 1
        let sure = now < owned.validUntil
        if !sure { owned.heldAcknowledgements.append(job.replyTo) }
        partitions[job.partition] = owned
        return Answered(acknowledge: sure ? job.replyTo : nil,
                        drained: owned.phase == .draining && owned.inFlight == 0 && sure ? job.partition : nil,
                        wantsPull: owned.phase == .fetching && owned.pull == nil && cap - owned.inFlight == pullThreshold)
    }

    /// The job's result could not be stored: it is let go unacknowledged (delivered again).
    mutating func abandoned(_ sequence: UInt64) -> Int? {
        guard let job = jobs.removeValue(forKey: sequence), var owned = partitions[job.partition], owned.generation == job.generation else { return nil }
        owned.inFlight -= 1
        partitions[job.partition] = owned
        return owned.phase == .draining && owned.inFlight == 0 ? job.partition : nil
    }

    /// The partition and key token of a job in flight.
    func job(_ sequence: UInt64) -> Job? { jobs[sequence] }

    /// A pull request to send: for a partition fetching, with no pull out (or one past its
    /// deadline), and room for half a batch at least.
    struct PullRequest: Equatable {
        var partition: Int
        var generation: UInt64
        var consumer: String
        var batch: Int
    }

    func pullsWanted(now: UInt64) -> [PullRequest] {
        partitions.compactMap { partition, owned in
            guard owned.phase == .fetching, now < owned.validUntil, owned.pull.map({ $0.deadline <= now }) ?? true else { return nil }
            let room = cap - owned.inFlight
            guard room >= pullThreshold else { return nil }
            return PullRequest(partition: partition, generation: owned.generation, consumer: owned.consumer, batch: min(batch, room))
        }.sorted { $0.partition < $1.partition }
    }

    /// A pull request went out; returns the token of one it replaces (past its deadline).
    mutating func pullSent(_ request: PullRequest, token: UInt64, deadline: UInt64) -> UInt64? {
        guard var owned = partitions[request.partition], owned.generation == request.generation else { return nil }
        let replaced = owned.pull?.token
        owned.pull = Pull(token: token, remaining: request.batch, deadline: deadline)
        partitions[request.partition] = owned
        return replaced
    }

    /// The server ended a pull request (408 timeout, 404, 409); true if it was the current one.
    mutating func pullEnded(partition: Int, token: UInt64) -> Bool {
        guard partitions[partition]?.pull?.token == token else { return false }
        partitions[partition]!.pull = nil
        return true
    }

    /// The earliest deadline of a pull out.
    var nearestPullDeadline: UInt64? { partitions.values.compactMap(\.pull?.deadline).min() }

    /// Jobs untouched since `before`: say they are in progress (`+WPI`), so that the ack wait
    /// does not pass while a plugin works on them. Their time is set to `now`.
    mutating func inProgress(untouchedSince before: UInt64, now: UInt64) -> [String] {
        var replies: [String] = []
        for (sequence, job) in jobs where job.touchedAt < before && partitions[job.partition]?.generation == job.generation {
            replies.append(job.replyTo)
            jobs[sequence]!.touchedAt = now
        }
        return replies
    }
}
