import Batchman

/// One configuration of a running host: a manifest, its plugin instances and the core that
/// batches for them. A reload makes the next generation; the one it replaces finishes the jobs
/// it accepted (within `reloadTimeout`) and is then released.
final class HostGeneration: Sendable {
    typealias Core = Batchman<JobBytes, JobBytes, ContinuousClock>

    let number: Int
    let manifest: Manifest
    let registry: PluginRegistry
    let core: Core
    /// Happens once this generation has drained and released its instances.
    let drained = OneTimeEvent()
    /// Each key's plugin file as it was when loaded, to tell a rebuilt plugin in the reload report.
    let fileIdentities: [String: LibraryImages.FileIdentity]

    /// Loads every plugin of `manifest`; `proving` (a reload) also makes one instance of each
    /// entry, to prove it can be made, before anything switches to it. Its batches wait until
    /// `previousDrained` has happened, so a key's batches stay in order across a reload and a
    /// plugin never runs two builds of one key's work at once.
    /// - Throws: ``HostError`` with every problem, as `check` reports them.
    init(
        number: Int, manifest: Manifest, after previousDrained: OneTimeEvent?, batchIds: BatchIdGenerator, control: WorkerPool,
        workers: WorkerPool, budget: ProcessBudget, proving: Bool, logger: BatchmanLogger
    ) throws(HostError) {
        self.number = number
        self.manifest = manifest
        let registry = try PluginRegistry(manifest: manifest, control: control, workers: workers, logger: logger, budget: budget,
                                          proving: proving)
        self.registry = registry
        fileIdentities = registry.pluginFiles.compactMapValues(LibraryImages.FileIdentity.init(path:))
        var factories = registry.processorFactories
        if let previousDrained, !previousDrained.hasHappened {
            factories = factories.mapValues { make in
                { key in AfterEventProcessor(inner: try make(key), event: previousDrained) }
            }
        }
        do {
            let core = try Core(config: manifest.batchmanConfig(), processors: factories, logger: logger, batchIds: batchIds)
            // Weakly: the core holds the instances, which hold the pauser.
            registry.pauser.connect { [weak core] key, duration in core?.pause(key: key, for: duration) ?? false }
            self.core = core
        } catch {
            registry.destroyAll()
            throw HostError(.configuration, "\(manifest.path): \(error)")
        }
    }

    /// Finishes the jobs this generation accepted, for at most `reloadTimeout`, then releases
    /// its instances.
    func retire(logger: BatchmanLogger) async {
        await core.shutdown(timeout: manifest.reloadTimeout, cause: "reload")
        // Destroying waits for plugins and worker processes: on a thread of its own, never the
        // cooperative pool's.
        let busy = await withCheckedContinuation { (done: CheckedContinuation<[any KeyInstance], Never>) in
            DedicatedThread.start(name: "batchman-retire") { [registry] in done.resume(returning: registry.destroyAll()) }
        }
        for instance in busy {
            let what = instance.terminate()
                ? "killed its worker process, and the instance goes with it"
                : "its instance is not destroyed (destroy never runs during a call, and an in-process call cannot be stopped)"
            logger.log(.warning, "key \"\(instance.key)\": plugin \"\(instance.pluginName)\" of the replaced configuration is still inside "
                       + "process_batch after the reload timeout; \(what)")
        }
        drained.happen()
    }
}

/// Holds a processor's batches until an event (the previous generation has drained).
struct AfterEventProcessor: QueueingBatchProcessor {
    typealias Payload = JobBytes
    typealias Output = JobBytes

    let inner: any BatchProcessor<JobBytes, JobBytes>
    let event: OneTimeEvent

    var answersInOrder: Bool { inner.answersInOrder }

    func enqueue(_ batch: Batch<JobBytes>, completion: @escaping @Sendable (Result<[JobOutcome<JobBytes>], any Error>) -> Void) {
        // `inner` is the host's own queueing processor: it starts the batch's call itself.
        if inner.queuesItsBatches {
            event.whenHappened { [inner] in _ = inner.enqueueIfQueueing(batch, completion: completion) }
            return
        }
        Task { [inner, event] in
            await event.wait()
            do {
                completion(.success(try await inner.process(batch)))
            } catch {
                completion(.failure(error))
            }
        }
    }
}
