import Batchman

/// Where the core hands the host's results, a batch at a time: encodes them on the calling
/// thread (the one that settled the batch), with no lock held, and appends the lines to the
/// writer in one go. With a spool, the lines carry the spool sequences they mark done.
final class OutputSink: ResultSink {
    private let writer: ResultWriter
    private let tracker: SpoolTracker?
    /// Told how much room the answered jobs free (`--max-pending-bytes`).
    private let pending: PendingBytes?
    /// The jobs came from the spool, accepted by an earlier run: results say `"replayed":true`.
    private let replayed: Bool

    init(writer: ResultWriter, tracker: SpoolTracker? = nil, pending: PendingBytes? = nil, replayed: Bool = false) {
        self.writer = writer
        self.tracker = tracker
        self.pending = pending
        self.replayed = replayed
    }

    func receive(_ results: [JobResult<JobBytes, JobBytes>]) {
        var lines: [UInt8] = []
        // About what a result line of a small job takes; more is grown as needed.
        lines.reserveCapacity(results.count * 256)
        var timestamps = ResultEncoder.Timestamps()
        var freed = 0
        for result in results {
            ResultEncoder.append(result, timestamps: &timestamps, replayed: replayed, to: &lines)
            freed += PendingBytes.charge(key: result.key, id: result.id, payload: result.payload)
        }
        writer.append(lines, count: results.count, done: tracker?.take(results) ?? [])
        pending?.answered(freed)
    }
}
