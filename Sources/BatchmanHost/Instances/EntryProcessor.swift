import Batchman

/// The core's processor for a key: hands its batches to the key's instance in its entry, and
/// counts each batch's size for `/metrics` (the instance times the plugin call).
struct EntryProcessor: QueueingBatchProcessor {
    typealias Payload = JobBytes
    typealias Output = JobBytes

    let instances: EntryInstances
    let metrics: HostMetrics.Entry

    init(instances: EntryInstances, metrics: HostMetrics = .shared) {
        self.instances = instances
        self.metrics = metrics.entry(named: instances.entry.name)
    }

    /// Every path (in-process, isolated, a crash's search) answers job by job, in order.
    var answersInOrder: Bool { true }

    func enqueue(_ batch: Batch<JobBytes>, completion: @escaping @Sendable (Result<[JobOutcome<JobBytes>], any Error>) -> Void) {
        metrics.batchSize.observe(Double(batch.jobs.count))
        instances.run(batch, completion: completion)
    }
}
