import Batchman
import Synchronization

/// The cells of a per-key entry, one per key that has needed an instance and not been retired.
final class PerKeyCells: Sendable {
    private struct Cells {
        /// By the key's exact bytes: canonically equivalent keys are different keys.
        var byKey: [ExactString: InstanceCell] = [:]
        var isClosed = false
    }

    private let workers: WorkerPool
    private let onEnded: @Sendable () -> Void
    private let make: EntryInstances.Make
    private let cells = Mutex(Cells())

    init(workers: WorkerPool, onEnded: @escaping @Sendable () -> Void, make: @escaping EntryInstances.Make) {
        self.workers = workers
        self.onEnded = onEnded
        self.make = make
    }

    /// The key's cell, made if it has none or its cell was retired (a retired cell stays in the
    /// table until the scan that retired it takes it out).
    func cell(forKey key: String) -> InstanceCell {
        cells.withLock { cells in
            if let cell = cells.byKey[ExactString(key)], !cell.isRetired { return cell }
            let cell = InstanceCell(key: key, workers: workers, onEnded: onEnded, make: make(key))
            // Closed: a cell that refuses the batch, never one that would make an instance.
            guard !cells.isClosed else {
                _ = cell.close()
                return cell
            }
            cells.byKey[ExactString(key)] = cell
            return cell
        }
    }

    var instances: [any KeyInstance] { cells.withLock { Array($0.byKey.values) }.compactMap(\.instance) }

    /// Retires every cell idle since `cutoff`. The table's lock is held only to copy it and to
    /// take the retired cells out, not while each cell is asked: batches of other keys find
    /// their cells meanwhile (at 200,000 keys the scan takes milliseconds).
    func retireIdle(since cutoff: UInt64) -> [any KeyInstance] {
        let all = cells.withLock { Array($0.byKey) }
        var retired: [(key: ExactString, cell: InstanceCell)] = []
        var instances: [any KeyInstance] = []
        for (key, cell) in all {
            let (gone, instance) = cell.retire(idleSince: cutoff)
            guard gone else { continue }
            retired.append((key, cell))
            if let instance { instances.append(instance) }
        }
        guard !retired.isEmpty else { return [] }
        cells.withLock { cells in
            // Only if it is still that cell: a batch may have put a new one in its place.
            for (key, cell) in retired where cells.byKey[key] === cell { cells.byKey[key] = nil }
        }
        return instances
    }

    func retireLeastRecentlyUsed() -> (any KeyInstance)? {
        cells.withLock { cells in
            let idle = cells.byKey.compactMap { key, cell in cell.idleSince.map { (key, cell, $0) } }
            guard let (key, cell, since) = idle.min(by: { $0.2 < $1.2 }) else { return nil }
            let (gone, instance) = cell.retire(idleSince: since)
            guard gone else { return nil }
            cells.byKey[key] = nil
            return instance
        }
    }

    func close() -> [any KeyInstance] {
        let all = cells.withLock { cells in
            defer {
                cells.byKey = [:]
                cells.isClosed = true
            }
            return Array(cells.byKey.values)
        }
        return all.compactMap { $0.close() }
    }
}
