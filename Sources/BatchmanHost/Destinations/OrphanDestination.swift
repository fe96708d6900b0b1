import Batchman

/// The destination of jobs whose client is gone: a connection that closed before its results,
/// or a connection's line replayed from the spool after a crash (its client went with the old
/// host). The jobs still run (they may have side effects); their results are counted as
/// `orphaned` and marked done in the spool.
final class OrphanDestination: ResultDestination {
    private let spool: Spool?
    private let pending: PendingBytes?
    private let orphans: ServiceCounters

    init(spool: Spool?, pending: PendingBytes?, counters: ServiceCounters) {
        self.spool = spool
        self.pending = pending
        self.orphans = counters
    }

    func receive(_ results: [JobResult<JobBytes, JobBytes>]) {
        orphans.orphaned(results.count)
        spool?.markDone(results.spoolSequences)
        pending?.answered(results.pendingCharge)
        SupervisorBoard.shared?.answered(results.count)
    }

    func answer(_ lines: [UInt8], count: Int, done: [UInt64]) {
        orphans.orphaned(count)
        spool?.markDone(done)
        SupervisorBoard.shared?.answered(count)
    }
}
