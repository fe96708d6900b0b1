import Batchman

/// Where the results of a source's jobs go: standard output (or `--output`), the connection that
/// sent them, or nobody (``OrphanDestination``).
///
/// Each source submits its jobs with its destination as their ``ResultSink``, so the core hands
/// a batch's results to each destination the batch's jobs name, and no table maps a job back to
/// where it came from. A result's ``JobTag`` carries the job's spool sequence, which the
/// destination marks done once the result is out.
protocol ResultDestination: ResultSink where Payload == JobBytes, Output == JobBytes {
    /// Result lines the host wrote itself (a line that is not a job gets its `invalid_input`
    /// result here), `count` of them, with the spool sequences they answer.
    func answer(_ lines: [UInt8], count: Int, done: [UInt64])
}

extension ResultDestination {
    /// This destination as the core's sink type: what `submit(contentsOf:to:)` takes without
    /// being generic over it (see there).
    var sink: any ResultSink<JobBytes, JobBytes> { self }
}

// The loops below read each result in place, by index: `for result in self` (or a closure
// given each element) copies a whole result, and Swift copies a struct this large through its
// value witnesses, a few hundred instructions and a retain of every buffer it holds (a job's
// payload is a slice of the reader's input chunk).
extension Array where Element == JobResult<JobBytes, JobBytes> {
    /// The spool sequences of these results' jobs (0 in a tag: the job was not spooled).
    var spoolSequences: [UInt64] {
        var sequences: [UInt64] = []
        for index in indices where self[index].tag.value != 0 { sequences.append(self[index].tag.value) }
        return sequences
    }

    /// The `--max-pending-bytes` these results' jobs held.
    var pendingCharge: Int {
        var charge = 0
        for index in indices {
            charge += PendingBytes.charge(key: self[index].key, id: self[index].id, payloadBytes: self[index].payload.count)
        }
        return charge
    }

    /// Every result as a line, encoded without a lock held.
    func encodedLines(replayed: Bool) -> [UInt8] {
        ResultEncoder.lines(of: self, replayed: replayed)
    }
}
