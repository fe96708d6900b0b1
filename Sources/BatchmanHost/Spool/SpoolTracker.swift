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

    /// A job's sequences: almost always one, held without an array of its own.
    private struct Sequences {
        var first: UInt64
        var more: [UInt64] = []
    }

    private let sequences = Mutex<[JobKey: Sequences]>([:])

    /// Registers a read's jobs under one lock.
    func register(_ jobs: [(key: String, id: String, sequence: UInt64)]) {
        guard !jobs.isEmpty else { return }
        sequences.withLock { sequences in
            for job in jobs {
                let key = JobKey(key: ExactString(job.key), id: ExactString(job.id))
                if sequences[key] == nil {
                    sequences[key] = Sequences(first: job.sequence)
                } else {
                    sequences[key]!.more.append(job.sequence)
                }
            }
        }
    }

    /// The sequences of the jobs these results answer.
    func take(_ results: [JobResult<JobBytes, JobBytes>]) -> [UInt64] {
        sequences.withLock { sequences in
            results.indices.compactMap { index -> UInt64? in
                let key = JobKey(key: ExactString(results[index].key), id: ExactString(results[index].id))
                guard var held = sequences[key] else { return nil }
                let sequence: UInt64
                if held.more.isEmpty {
                    sequence = held.first
                    sequences[key] = nil
                    return sequence
                }
                if results[index].errorReason == .duplicate {
                    sequence = held.more.removeLast()
                } else {
                    sequence = held.first
                    held.first = held.more.removeFirst()
                }
                sequences[key] = held
                return sequence
            }
        }
    }
}
