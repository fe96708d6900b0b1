import Batchman

/// The core's processor for one key, backed by a plugin instance. Every call runs on a
/// dedicated worker thread, never on Swift's cooperative pool, and that thread also settles the
/// batch and hands its results over (the core's ``QueueingBatchProcessor`` path): a batch crosses
/// no other thread between the plugin and the output. The batch's timeout counts from the moment
/// the plugin is called, not from when the batch started waiting for a worker.
struct PluginProcessor: QueueingBatchProcessor {
    typealias Payload = JobBytes
    typealias Output = JobBytes

    let instance: PluginInstance
    let workers: WorkerPool

    /// Outcomes are made by position from what the plugin emitted (see EmitCollector).
    var answersInOrder: Bool { true }

    func enqueue(_ batch: Batch<JobBytes>, completion: @escaping @Sendable (Result<[JobOutcome<JobBytes>], any Error>) -> Void) {
        instance.run(batch, on: workers, completion: completion)
    }
}
