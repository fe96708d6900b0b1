import Batchman
import Synchronization

/// Which spool sequence each job in the batchers came from, so that the lines of its result
/// can mark it done. Keyed by key and id, byte for byte; a key and id submitted again while
/// the first is pending is refused as a duplicate at once, so a `duplicate` result takes the
/// newest sequence and any other result the oldest.
final class SpoolTracker: Sendable {
    private struct JobKey: Hashable {
        let key: ExactString
        let id: ExactString
    }

    private let sequences = Mutex<[JobKey: [UInt64]]>([:])

    func register(key: String, id: String, sequence: UInt64) {
        sequences.withLock { $0[JobKey(key: ExactString(key), id: ExactString(id)), default: []].append(sequence) }
    }

    /// The sequences of the jobs these results answer.
    func take(_ results: [JobResult<JobBytes, JobBytes>]) -> [UInt64] {
        sequences.withLock { sequences in
            results.compactMap { result -> UInt64? in
                let job = JobKey(key: ExactString(result.key), id: ExactString(result.id))
                guard var list = sequences[job], !list.isEmpty else { return nil }
                let sequence = result.errorReason == .duplicate ? list.removeLast() : list.removeFirst()
                sequences[job] = list.isEmpty ? nil : list
                return sequence
            }
        }
    }
}
