/// Crashes and restarts of an isolated key's workers, for the statistics lines.
struct IsolationStatistics: Sendable, Equatable {
    var crashes = 0
    var restarts = 0
}

extension IsolationStatistics {
    /// Adds another instance's counts (a pool's workers, or instances already retired).
    mutating func add(_ other: IsolationStatistics) {
        crashes += other.crashes
        restarts += other.restarts
    }
}
