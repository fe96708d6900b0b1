import Batchman
import Synchronization

/// The running host's generations: the current one, which the reader submits to; the ones a
/// reload replaced, still finishing their jobs; and a staged one, built by a reload and taken
/// over by the reader at its next line.
final class Generations: Sendable {
    private struct State {
        var current: HostGeneration
        /// A generation built by a reload, and that reload's number.
        var staged: (generation: HostGeneration, reload: Int)?
        var retiring: [HostGeneration] = []
        /// Counters of generations that have finished, added up.
        var finished = BatchmanStatistics(total: BatcherStatistics(), perKey: [:])
        var reloads = 0
        var reloadsSucceeded = 0
        var reloadsFailed = 0
        var lastReload: String?
        var isClosed = false
    }

    private let state: Mutex<State>
    /// Read by the reader on every line; set when a generation is staged.
    private let hasStaged = Atomic<Bool>(false)
    private let logger: BatchmanLogger

    init(first: HostGeneration, logger: BatchmanLogger) {
        state = Mutex(State(current: first))
        self.logger = logger
    }

    var current: HostGeneration { state.withLock { $0.current } }

    /// Every generation that has not finished, current first.
    var live: [HostGeneration] { state.withLock { [$0.current] + $0.retiring } }

    /// Counts a reload and its outcome (for the statistics line); returns its number.
    func beginReload() -> Int {
        state.withLock { state in
            state.reloads += 1
            return state.reloads
        }
    }

    func reloadFailed() {
        state.withLock {
            $0.lastReload = "failed"
            $0.reloadsFailed += 1
        }
    }

    /// Hands `next`, built by reload number `reload`, to the reader. False once reading has
    /// ended: the caller releases it.
    func stage(_ next: HostGeneration, reload: Int) -> Bool {
        let staged = state.withLock { state -> Bool in
            guard !state.isClosed else { return false }
            state.staged = (next, reload)
            return true
        }
        if staged { hasStaged.store(true, ordering: .releasing) }
        return staged
    }

    /// Whether a staged generation waits for the reader.
    var isStaged: Bool { hasStaged.load(ordering: .acquiring) }

    /// On the reader's thread, between lines: makes the staged generation current, and starts
    /// retiring the one it replaces. Returns the generation to submit to.
    func switchIfStaged(describe: (HostGeneration, HostGeneration) -> String) -> HostGeneration {
        guard hasStaged.load(ordering: .acquiring) else { return current }
        let (old, new, reload) = state.withLock { state -> (HostGeneration?, HostGeneration, Int) in
            hasStaged.store(false, ordering: .relaxed)
            guard let (staged, reload) = state.staged else { return (nil, state.current, 0) }
            let old = state.current
            state.current = staged
            state.staged = nil
            state.retiring.append(old)
            state.lastReload = "ok"
            state.reloadsSucceeded += 1
            return (old, staged, reload)
        }
        guard let old else { return new }
        logger.log(.info, "reload \(reload): ok, \(describe(old, new))", context: .init(reload: reload))
        Task { [logger] in
            await old.retire(logger: logger)
            let statistics = old.core.statistics()
            state.withLock { state in
                state.retiring.removeAll { $0 === old }
                state.finished = state.finished.adding(statistics)
            }
        }
        return new
    }

    /// Reading has ended: no generation is switched to any more. Returns a staged one, if any,
    /// for the caller to release.
    func close() -> HostGeneration? {
        state.withLock { state in
            state.isClosed = true
            defer { state.staged = nil }
            return state.staged?.generation
        }
    }

    /// Reloads that took over, and reloads that failed (`batchman_reloads_total`).
    var reloadResults: (succeeded: Int, failed: Int) { state.withLock { ($0.reloadsSucceeded, $0.reloadsFailed) } }

    /// The counters of every generation, added up, and the reloads so far.
    func statistics() -> (BatchmanStatistics, reloads: Int, lastReload: String?) {
        let (finished, live, reloads, last) = state.withLock { ($0.finished, [$0.current] + $0.retiring, $0.reloads, $0.lastReload) }
        return (live.reduce(finished) { $0.adding($1.core.statistics()) }, reloads, last)
    }
}

extension BatchmanStatistics {
    /// These counters and `other`'s, added up, key by key.
    func adding(_ other: BatchmanStatistics) -> BatchmanStatistics {
        BatchmanStatistics(total: total + other.total, perKey: perKey.merging(other.perKey, uniquingKeysWith: +))
    }
}
