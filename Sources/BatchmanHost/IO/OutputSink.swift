import Batchman

/// Where the core hands the host's results, a batch at a time: encodes them on the calling
/// thread (the one that settled the batch), with no lock held, and appends the lines to the
/// writer in one go.
final class OutputSink: ResultSink {
    private let writer: ResultWriter

    init(writer: ResultWriter) {
        self.writer = writer
    }

    func receive(_ results: [JobResult<JobBytes, JobBytes>]) {
        var lines: [UInt8] = []
        // About what a result line of a small job takes; more is grown as needed.
        lines.reserveCapacity(results.count * 256)
        var timestamps = ResultEncoder.Timestamps()
        for result in results { ResultEncoder.append(result, timestamps: &timestamps, to: &lines) }
        writer.append(lines)
    }
}
