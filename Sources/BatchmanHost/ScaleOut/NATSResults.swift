import Batchman
import BatchmanNATS
import Synchronization

/// The destination of a partition's jobs: each result line, with `"host"` and `"partition"`
/// added, is stored on `results.<partition>.<key>` with `Nats-Msg-Id: <key>/<id>` (retried until
/// stored; the results stream keeps one copy per id within its duplicate window), and only then
/// is its job acknowledged. A crash between the two makes a duplicate, never a loss.
final class NATSResults: ResultDestination {
    private let scaleOut: ScaleOut
    private let pending: PendingBytes
    /// `,"host":"<name>"`, encoded once.
    private let hostField: [UInt8]

    /// Whether a key's results must be stored in order (its entry has `maxInFlight` 1): then
    /// they are stored one at a time, each after the one before is acknowledged.
    private let keepsOrder: @Sendable (String) -> Bool

    init(scaleOut: ScaleOut, pending: PendingBytes, keepsOrder: @escaping @Sendable (String) -> Bool) {
        self.scaleOut = scaleOut
        self.pending = pending
        self.keepsOrder = keepsOrder
        var field = Array(",\"host\":".utf8)
        JSONStringEscaper.append(scaleOut.name, to: &field)
        hostField = field
    }

    func receive(_ results: [JobResult<JobBytes, JobBytes>]) {
        HostMetrics.shared.answered(results)
        var timestamps = ResultEncoder.Timestamps()
        // A batch's results: one key's.
        let inOrder = results.first.map { keepsOrder($0.key) } ?? false
        for result in results {
            guard let partition = ScaleOut.partition(ofScope: result.tag.scope) else { continue }
            var line: [UInt8] = []
            line.reserveCapacity(256 + result.payload.count)
            ResultEncoder.append(result, timestamps: &timestamps, to: &line)
            publish(line, partition: partition, keyToken: SubjectToken.encode(result.key), id: SubjectToken.encode(result.id),
                    sequence: result.tag.value, charge: PendingBytes.charge(key: result.key, id: result.id, payloadBytes: result.payload.count),
                    inOrder: inOrder)
        }
    }

    /// A line the host answered itself (a message that is not a job), or a blank message
    /// (no line): stored and acknowledged the same way.
    func answer(_ lines: [UInt8], count: Int, done: [UInt64]) {
        let split = lines.split(separator: UInt8(ascii: "\n"))
        for (index, sequence) in done.enumerated() {
            guard let job = scaleOut.table.withLock({ $0.job(sequence) }) else { continue }
            guard index < split.count else {
                scaleOut.stored(sequence)  // blank: nothing to store
                continue
            }
            var line = Array(split[index])
            line.append(UInt8(ascii: "\n"))
            publish(line, partition: job.partition, keyToken: String(job.keyToken), id: "%23\(sequence)", sequence: sequence, charge: 0,
                    inOrder: false)
        }
    }

    /// Stores one encoded result line (it ends in `}\n`), then acknowledges its job.
    private func publish(_ encoded: [UInt8], partition: Int, keyToken: String, id: String, sequence: UInt64, charge: Int, inOrder: Bool) {
        var line = encoded
        line.removeLast(2)
        line.append(contentsOf: hostField)
        line.append(contentsOf: ",\"partition\":".utf8)
        line.append(contentsOf: String(partition).utf8)
        line.append(UInt8(ascii: "}"))
        let scaleOut = scaleOut
        let pending = pending
        // A result whose partition is no longer this host's is not stored (nor its job
        // acknowledged): the next owner runs the job again and stores its result, so that a
        // key's results never come from two live hosts at once. While the lease is renewed late,
        // the result (and those behind it) waits.
        let subject = "results.\(partition).\(keyToken)"
        scaleOut.publisher.publish(subject, msgId: "\(keyToken)/\(id)", payload: line, orderKey: inOrder ? subject : nil,
                                   decide: { scaleOut.publishDecision(sequence) }) { outcome in
            pending.answered(charge)
            SupervisorBoard.shared?.answered(1)
            switch outcome {
            case .success:
                scaleOut.stored(sequence)
            case .failure(.closed):
                scaleOut.notStored(sequence)
            case .failure(let error):
                let count = scaleOut.counters.storeFailures.add(1, ordering: .relaxed).newValue
                if count == 1 || count % 1000 == 0 {
                    scaleOut.logger.log(.error, "nats: a result on results.\(partition).\(keyToken) could not be stored (\(error)); its job is not "
                                        + "acknowledged and will be delivered again (\(count) so far)")
                }
                scaleOut.notStored(sequence)
            }
        }
    }
}
