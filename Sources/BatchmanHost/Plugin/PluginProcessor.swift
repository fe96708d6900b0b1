import Batchman

/// The core's processor for one key, backed by a plugin instance. Every call runs on a
/// dedicated worker thread, never on Swift's cooperative pool; the batch's timeout counts from
/// the moment the plugin is called, not from when the batch started waiting for a worker.
struct PluginProcessor: QueueingBatchProcessor {
    let instance: PluginInstance
    let workers: WorkerPool

    func process(_ batch: Batch<JobBytes>) async throws -> [JobOutcome<JobBytes>] {
        await withCheckedContinuation { continuation in
            instance.schedule({ [instance] in
                // Given up on while it waited (the shutdown timed out): never call the plugin.
                guard batch.beginCall() else { return { continuation.resume(returning: []) } }
                let outcomes = instance.process(batch).outcomes
                return { continuation.resume(returning: outcomes) }
            }, on: workers)
        }
    }
}
