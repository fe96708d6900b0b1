import Batchman

/// Where the core hands the host's results, a batch at a time: encodes them on the calling
/// thread (the one that settled the batch), with no lock held, and appends the lines to the
/// writer in one go. With a spool, the lines carry the spool sequences they mark done.
final class OutputSink: ResultSink {
    private let writer: ResultWriter
    private let tracker: SpoolTracker?
    /// The jobs came from the spool, accepted by an earlier run: results say `"replayed":true`.
    private let replayed: Bool

    init(writer: ResultWriter, tracker: SpoolTracker? = nil, replayed: Bool = false) {
        self.writer = writer
        self.tracker = tracker
        self.replayed = replayed
    }

    func receive(_ results: [JobResult<JobBytes, JobBytes>]) {
        var lines: [UInt8] = []
        // About what a result line of a small job takes; more is grown as needed.
        lines.reserveCapacity(results.count * 256)
        var timestamps = ResultEncoder.Timestamps()
        for result in results { ResultEncoder.append(result, timestamps: &timestamps, replayed: replayed, to: &lines) }
        writer.append(lines, done: tracker?.take(results) ?? [])
    }
}
