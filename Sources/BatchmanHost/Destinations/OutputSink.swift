import Batchman

/// The destination of standard input's (or `--input`'s) jobs: standard output, or `--output`.
/// Encodes a batch's results on the thread that settled it, with no lock held, and appends the
/// lines to the writer in one go, with the spool sequences they mark done once written.
final class OutputSink: ResultDestination {
    private let writer: ResultWriter
    /// Told how much room the answered jobs free (`--max-pending-bytes`).
    private let pending: PendingBytes?
    /// The jobs came from the spool, accepted by an earlier run: results say `"replayed":true`.
    private let replayed: Bool

    init(writer: ResultWriter, pending: PendingBytes? = nil, replayed: Bool = false) {
        self.writer = writer
        self.pending = pending
        self.replayed = replayed
    }

    func receive(_ results: [JobResult<JobBytes, JobBytes>]) {
        writer.append(results.encodedLines(replayed: replayed), count: results.count, done: results.spoolSequences)
        pending?.answered(results.pendingCharge)
        HostMetrics.shared.answered(results)
    }

    func answer(_ lines: [UInt8], count: Int, done: [UInt64]) {
        writer.append(lines, count: count, done: done)
    }
}
