import Batchman

/// The core's processor for a key: hands its batches to the key's instance in its entry.
struct EntryProcessor: QueueingBatchProcessor {
    typealias Payload = JobBytes
    typealias Output = JobBytes

    let instances: EntryInstances

    /// Every path (in-process, isolated, a crash's search) answers job by job, in order.
    var answersInOrder: Bool { true }

    func enqueue(_ batch: Batch<JobBytes>, completion: @escaping @Sendable (Result<[JobOutcome<JobBytes>], any Error>) -> Void) {
        instances.run(batch, completion: completion)
    }
}
