import Batchman
import Synchronization

/// The plugin instances of one manifest entry, laid out as its `instances` and `isolation` say:
///
/// - `perKey`: a cell per key (an entry names one key; `default` serves every unnamed key),
///   made on the key's first batch and retired after `idleTimeout` unused;
/// - `shared`, in-process: one cell for every key, made on the first batch, never retired;
/// - `shared`, isolated: a pool of `processes` workers, started as batches need them.
///
/// Batches stay per key whatever the layout: the plugin sees each batch's key.
final class EntryInstances: Sendable {
    /// Makes the entry's instance for a key.
    typealias Make = @Sendable (_ key: String) -> InstanceCell.Make

    private enum Layout: Sendable {
        case perKey(PerKeyCells)
        case shared(InstanceCell)
        case pool(WorkerPoolInstances)
    }

    let entry: Manifest.KeyEntry
    let placement: Manifest.Placement
    private let layout: Layout

    init(entry: Manifest.KeyEntry, placement: Manifest.Placement, workers: WorkerPool, onEnded: @escaping @Sendable () -> Void,
         make: @escaping Make) {
        self.entry = entry
        self.placement = placement
        switch (placement.instances, placement.isolation) {
        case (.perKey, _):
            layout = .perKey(PerKeyCells(workers: workers, onEnded: onEnded, make: make))
        case (.shared, .none):
            layout = .shared(InstanceCell(key: entry.name, workers: workers, make: make(entry.name)))
        case (.shared, .process):
            layout = .pool(WorkerPoolInstances(key: entry.name, size: placement.processes, workers: workers, make: make(entry.name)))
        }
    }

    /// Runs `batch` on the instance its key has in this entry.
    func run(_ batch: Batch<JobBytes>, completion: @escaping BatchCompletion) {
        switch layout {
        case .shared(let cell):
            _ = cell.run(batch, completion: completion)
        case .pool(let pool):
            pool.run(batch, completion: completion)
        case .perKey(let cells):
            // A cell retired between the lookup and the run does not take the batch: the next
            // lookup finds (or makes) the key's new cell.
            while !cells.cell(forKey: batch.key).run(batch, completion: completion) {}
        }
    }

    /// A key's first job has come (its batcher is being made): its instance is made now, not at
    /// its first batch. An isolated plugin is read from its file when its worker starts; starting
    /// it with the first job runs the build that was there when the job came, as an in-process
    /// plugin does (loaded when the configuration was).
    func warm(key: String) {
        switch layout {
        case .shared(let cell): cell.warm()
        case .pool(let pool): pool.warm()
        case .perKey(let cells): cells.cell(forKey: key).warm()
        }
    }

    /// Makes one instance now and waits for it, to prove the entry's plugin can be created
    /// (`check`, a reload). It stays as the entry's own: the named key's (or, for `default`, the
    /// key "default"'s), the shared instance, or the pool's first worker.
    /// - Returns: the error if it could not be made.
    func prove() -> PluginLoadError? {
        switch layout {
        case .shared(let cell): return cell.makeNow()
        case .pool(let pool): return pool.startOneNow()
        case .perKey(let cells): return cells.cell(forKey: entry.name).makeNow()
        }
    }

    /// The instances alive now (each isolated one is one worker process).
    var instances: [any KeyInstance] {
        switch layout {
        case .shared(let cell): cell.instance.map { [$0] } ?? []
        case .pool(let pool): pool.instances
        case .perKey(let cells): cells.instances
        }
    }

    /// Retires every per-key instance unused since `cutoff`, and forgets cells that hold
    /// nothing. Shared instances are never retired.
    /// - Returns: the instances to release.
    func retireIdle(since cutoff: UInt64) -> [any KeyInstance] {
        guard case .perKey(let cells) = layout else { return [] }
        return cells.retireIdle(since: cutoff)
    }

    /// Retires the per-key instance idle the longest, to make room for a worker another key
    /// waits for.
    /// - Returns: the instance to release, if one was idle.
    func retireLeastRecentlyUsed() -> (any KeyInstance)? {
        guard case .perKey(let cells) = layout else { return nil }
        return cells.retireLeastRecentlyUsed()
    }

    /// Out of service for good: fails the batches that wait for an instance.
    /// - Returns: the instances to release.
    func close() -> [any KeyInstance] {
        switch layout {
        case .shared(let cell): return cell.close().map { [$0] } ?? []
        case .pool(let pool): return pool.close()
        case .perKey(let cells): return cells.close()
        }
    }
}
