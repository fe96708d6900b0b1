import FoundationEssentials

/// Where a job is in its life: `submitted` -> `processing` -> `completed` | `failed`.
public enum JobStatus: String, Sendable, Hashable, CaseIterable {
    /// Accepted and waiting in an open or sealed batch.
    case submitted
    /// Part of a batch that a processor is working on.
    case processing
    /// The processor produced a result for it.
    case completed
    /// It will never complete; `JobResult.errorReason` says why.
    case failed
}

/// A unit of work: an id unique within its key, the key that picks its batcher, and a payload.
public struct Job<Payload: Sendable>: Sendable {
    /// The job's id; unique among the pending jobs of its key.
    public let id: String
    /// The key whose batcher and processor handle the job.
    public let key: String
    /// What the processor works on.
    public let payload: Payload
    /// The job's status when this value was made.
    public var status: JobStatus
    /// Which try this is, starting at 1.
    public var attempt: Int
    /// The submitter's tag, carried to the job's result (see ``JobTag``).
    public let tag: JobTag
    /// Whether a processor may have seen this job before: a retry (`attempt > 1`), or a job its
    /// submitter says was delivered before (``JobTag/redelivered``: replayed from the host's
    /// spool, redelivered by a stream). A processor with side effects checks here before it
    /// does them twice.
    @inlinable public var isRedelivery: Bool { attempt > 1 || tag.redelivered }
    /// When Batchman accepted the job (wall-clock time).
    @inlinable public var submittedAt: Date { Date(timeIntervalSince1970: submittedAtSeconds) }
    /// Kept as seconds since 1970 rather than a `Date`: a frozen layout, so copying a job in
    /// the hot path needs no runtime type metadata.
    @usableFromInline let submittedAtSeconds: Double

    /// A job as Batchman makes it on submission; public so that processors can be tested with
    /// batches built by hand.
    @inlinable public init(id: String, key: String, payload: Payload, submittedAt: Date = Date(), attempt: Int = 1, tag: JobTag = JobTag()) {
        self.id = id
        self.key = key
        self.payload = payload
        self.status = .submitted
        self.attempt = attempt
        self.tag = tag
        self.submittedAtSeconds = submittedAt.timeIntervalSince1970
    }

    /// A copy of `other`, field by field. Why not `let copy = other`: Swift copies a struct this
    /// large through its type's value witnesses (a few hundred instructions for a generic one,
    /// by callgrind), and a field-wise copy is inlined. The batcher copies every job once.
    @inlinable init(copying other: borrowing Job<Payload>) {
        self.id = other.id
        self.key = other.key
        self.payload = other.payload
        self.status = other.status
        self.attempt = other.attempt
        self.tag = other.tag
        self.submittedAtSeconds = other.submittedAtSeconds
    }

    @inlinable var identity: JobIdentity { JobIdentity(key: key, id: id, scope: tag.scope) }
}

/// A job's identity: ids are unique per key and scope (``JobTag/scope``), so the three are
/// unique per Batchman.
@usableFromInline struct JobIdentity: Hashable, Sendable {
    @inlinable init(key: String, id: String, scope: UInt32 = 0) {
        self.key = key
        self.id = id
        self.scope = scope
    }

    @usableFromInline let key: String
    @usableFromInline let id: String
    @usableFromInline let scope: UInt32

    /// Byte for byte: canonically equivalent but different ids are different jobs (see
    /// ``ExactString``).
    @inlinable static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.scope == rhs.scope && lhs.id.hasSameBytes(as: rhs.id) && lhs.key.hasSameBytes(as: rhs.key)
    }

    /// Only the id and scope are hashed: in a per-key batcher the key never varies, so hashing
    /// it would double the cost for nothing. Equality still compares all three.
    @inlinable func hash(into hasher: inout Hasher) {
        id.hashBytes(into: &hasher)
        if scope != 0 { hasher.combine(scope) }
    }
}
