import Batchman
import FoundationEssentials
import Glibc

/// Formats the host's statistics lines: `batchman: stats: accepted=... peakRSS=...`.
enum StatsReporter {
    /// The summary line of the whole host, with input lines that were not jobs counted as
    /// `invalid_input` failures, and how often reading paused for a slow consumer.
    static func summary(
        _ statistics: BatchmanStatistics, invalidLines: Int, outputPauses: Int, isolation: [String: IsolationStatistics] = [:],
        reloads: Int = 0, lastReload: String? = nil, instances: [EntryCount] = [], service: Service? = nil
    ) -> String {
        var total = statistics.total
        if invalidLines > 0 { total.failed[.invalidInput, default: 0] += invalidLines }
        // outputPauses only when there were any, and worker counts only with isolated keys: the
        // line keeps its usual shape otherwise.
        let pauses = outputPauses > 0 ? " outputPauses=\(outputPauses)" : ""
        let workers = isolation.isEmpty ? "" : describe(isolation.values.reduce(IsolationStatistics()) {
            IsolationStatistics(crashes: $0.crashes + $1.crashes, restarts: $0.restarts + $1.restarts)
        })
        let reloaded = reloads > 0 ? " reloads=\(reloads) lastReload=\(lastReload ?? "?")" : ""
        let clients = service.map { " connections=\($0.connections) orphaned=\($0.orphaned)" } ?? ""
        let alive = "\(clients) instances=\(instances.reduce(0) { $0 + $1.instances }) processes=\(instances.reduce(0) { $0 + $1.processes })"
        return "stats: \(describe(total))\(workers)\(pauses)\(reloaded)\(alive) peakRSS=\(peakResidentMiB().map { String(format1: $0) + "MiB" } ?? "?")"
    }

    /// One line per key, in key order.
    static func perKey(_ statistics: BatchmanStatistics, isolation: [String: IsolationStatistics] = [:]) -> [String] {
        statistics.perKey.keys.sorted().map { key in
            "stats: key \"\(key)\": \(describe(statistics.perKey[key]!))\(isolation[key].map(describe) ?? "")"
        }
    }

    /// Clients of `--listen`: connections open now, and results dropped because their client was gone.
    struct Service: Equatable, Sendable {
        var connections: Int
        var orphaned: Int
    }

    /// A manifest entry's plugin instances and worker processes alive now.
    struct EntryCount: Equatable, Sendable {
        var entry: String
        var instances: Int
        var processes: Int
    }

    /// One line per manifest entry: `stats: entry "default": instances=1 processes=0`.
    static func perEntry(_ counts: [EntryCount]) -> [String] {
        counts.map { "stats: entry \"\($0.entry)\": instances=\($0.instances) processes=\($0.processes)" }
    }

    private static func describe(_ isolation: IsolationStatistics) -> String {
        " crashes=\(isolation.crashes) workerRestarts=\(isolation.restarts)"
    }

    static func describe(_ statistics: BatcherStatistics) -> String {
        let failedTotal = statistics.failed.values.reduce(0, +)
        let reasons = statistics.failed.keys.sorted { $0.rawValue < $1.rawValue }
            .map { "\($0.rawValue)=\(statistics.failed[$0]!)" }.joined(separator: " ")
        let failed = reasons.isEmpty ? "\(failedTotal)" : "\(failedTotal) (\(reasons))"
        return "accepted=\(statistics.accepted) completed=\(statistics.completed) failed=\(failed) "
            + "retried=\(statistics.retried) inFlight=\(statistics.inFlight) pending=\(statistics.pending) "
            + "batches=\(statistics.batches) meanBatchSize=\(String(format1: statistics.meanBatchSize))"
    }

    /// The process's peak resident set (VmHWM in /proc/self/status), in MiB.
    static func peakResidentMiB() -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kibibytes = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return nil }
        return kibibytes / 1024
    }
}

extension String {
    /// `value` with one decimal: 12.3.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}
