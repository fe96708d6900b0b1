import FoundationEssentials
import Glibc

/// `batchman spool check DIR`: a spool's state, read without changing anything or running a job.
public enum SpoolCheck {
    /// The report, and whether the spool holds damage (that a run would repair).
    /// - Throws: ``HostError`` if `directory` is not a spool folder.
    public static func report(directory: String) throws(HostError) -> (text: String, isDamaged: Bool) {
        var status = stat()
        guard stat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw HostError(.usage, "spool check \(directory): no such folder; give the folder a host ran with --spool")
        }
        let scan = SpoolScan(directory: directory)
        var lines: [String] = []
        let ledger = scan.ledger
        lines.append("spool \(directory): \(scan.segments.count) segment(s), \(scan.bytes) bytes; \(scan.records.count) record(s), "
                     + "\(scan.pending) not answered (a run replays them)")
        switch (ledger, scan.ledgerIsDamaged) {
        case (let ledger?, _):
            lines.append("ledger: every line up to \(ledger.watermark) answered, and \(ledger.done.count) above it; input read to byte \(max(ledger.inputOffset, scan.inputOffset))")
        case (nil, true):
            lines.append("ledger: DAMAGED (checksum or size wrong); a run sets it aside and replays every record (at least once)")
        case (nil, false):
            lines.append("ledger: none yet (every record counts as not answered)")
        }
        for cut in scan.cuts {
            lines.append("\(cut.path): \(cut.bytes) bytes at byte \(cut.offset) are \(cut.isTail ? "a write cut short (a torn tail)" : "a damaged end"); a run cuts them off")
        }
        for damage in scan.damaged {
            lines.append("\(damage.path): DAMAGED record at byte \(damage.offset) (checksum or length wrong); a run moves it to \(directory)/quarantine/"
                         + (damage.isRestOfSegment ? " with the rest of the segment" : ""))
        }
        let quarantined = (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/quarantine"))?.count ?? 0
        lines.append("quarantine: \(quarantined) file(s) set aside by earlier runs")
        lines.append("lock: " + lockHolder(directory))
        let isDamaged = scan.ledgerIsDamaged || !scan.damaged.isEmpty || scan.cuts.contains { !$0.isTail }
        let tornTail = scan.cuts.contains { $0.isTail }
        lines.append(isDamaged ? "state: damaged; a run repairs it, answering every record it can"
                     : tornTail ? "state: ok, with a torn tail a run cuts off" : "state: ok")
        return (lines.joined(separator: "\n"), isDamaged)
    }

    /// Who holds the spool, asked without taking it.
    private static func lockHolder(_ directory: String) -> String {
        let lock = open("\(directory)/lock", O_RDONLY | O_CLOEXEC)
        guard lock >= 0 else { return "free (no host has used it yet)" }
        defer { close(lock) }
        guard flock(lock, LOCK_SH | LOCK_NB) != 0 else {
            flock(lock, LOCK_UN)
            return "free"
        }
        return "held by a running batchman" + (Spool.holder(of: directory).map { " (pid \($0))" } ?? "")
    }
}
