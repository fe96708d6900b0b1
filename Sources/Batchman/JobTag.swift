/// What a submitter attaches to a job and gets back, untouched, on its result.
///
/// Batchman reads only `scope`: ids are unique per key *within a scope*, so jobs of different
/// scopes never collide as duplicates. A server that takes jobs from many clients gives each
/// client a scope of its own, and two clients may both send id `1` for key `k`. `value` is the
/// submitter's alone: the host carries a job's spool sequence in it.
///
/// ```swift
/// let job = Job(id: "1", key: "k", payload: payload, tag: JobTag(scope: connection, value: sequence))
/// // ... later, in a ResultSink:
/// let sequence = result.tag.value
/// ```
@frozen public struct JobTag: Sendable, Hashable {
    /// Where the job's id is unique, with its key; 0 unless the submitter says otherwise.
    public var scope: UInt32
    /// Anything the submitter wants back with the result.
    public var value: UInt64
    /// The submitter knows the job may have reached a processor before (replayed from a spool,
    /// or redelivered by a stream): processors see it in ``Job/isRedelivery``.
    public var redelivered: Bool

    @inlinable public init(scope: UInt32 = 0, value: UInt64 = 0, redelivered: Bool = false) {
        self.scope = scope
        self.value = value
        self.redelivered = redelivered
    }
}
