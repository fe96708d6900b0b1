import Batchman

/// The host's state as Prometheus text exposition format 0.0.4 (`GET /metrics`).
///
/// Counters, gauges and histograms carry a `key` label whose values are the manifest's entries:
/// a named key, or `default` for every key the `default` entry serves. The counters are read
/// from the same statistics the statistics line prints, at the same moment.
enum PrometheusExposition {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Everything one scrape reports.
    struct Snapshot {
        /// The core's counters, per key, summed over every configuration of the run.
        var perKey: [String: BatcherStatistics]
        /// Input lines that were not jobs (answered `invalid_input`).
        var invalidLines: Int
        var isolation: [String: IsolationStatistics]
        var reloadsSucceeded: Int
        var reloadsFailed: Int
        var outputPauses: Int
        var spoolBytes: Int?
        var connections: Int?
        var orphaned: Int
        var histograms: [String: HostMetrics.Entry]
        /// The entry that serves a key.
        var entryName: (String) -> String
    }

    static func render(_ snapshot: Snapshot) -> String {
        var byEntry: [String: BatcherStatistics] = [:]
        for (key, statistics) in snapshot.perKey {
            let entry = snapshot.entryName(key)
            byEntry[entry] = (byEntry[entry] ?? BatcherStatistics()) + statistics
        }
        var isolation: [String: IsolationStatistics] = [:]
        for (key, counts) in snapshot.isolation { isolation[snapshot.entryName(key), default: IsolationStatistics()].add(counts) }
        let entries = Set(byEntry.keys).union(isolation.keys).union(snapshot.histograms.keys).sorted()
        var text = Text()

        text.family("batchman_build_info", "gauge", "The batchman version and the plugin ABI it speaks.")
        text.sample("batchman_build_info", [("version", HostCommand.versionNumber), ("abi", "1")], 1)

        text.family("batchman_jobs_accepted_total", "counter", "Jobs accepted into a batcher.")
        for entry in entries { text.sample("batchman_jobs_accepted_total", [("key", entry)], byEntry[entry]?.accepted ?? 0) }
        text.family("batchman_jobs_completed_total", "counter", "Jobs that completed.")
        for entry in entries { text.sample("batchman_jobs_completed_total", [("key", entry)], byEntry[entry]?.completed ?? 0) }
        text.family("batchman_jobs_failed_total", "counter", "Jobs that failed for good, by reason (input lines that were not jobs have no key).")
        for entry in entries {
            for (reason, count) in (byEntry[entry]?.failed ?? [:]).sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                text.sample("batchman_jobs_failed_total", [("key", entry), ("reason", reason.rawValue)], count)
            }
        }
        text.sample("batchman_jobs_failed_total", [("reason", FailureReason.invalidInput.rawValue)], snapshot.invalidLines)
        text.family("batchman_jobs_retried_total", "counter", "Retries scheduled.")
        for entry in entries { text.sample("batchman_jobs_retried_total", [("key", entry)], byEntry[entry]?.retried ?? 0) }
        text.family("batchman_batches_total", "counter", "Batches handed to a plugin, by what cut them.")
        for entry in entries {
            for reason in FlushReason.allCases {
                text.sample("batchman_batches_total", [("key", entry), ("reason", reason.rawValue)], byEntry[entry]?.batchesByReason[reason] ?? 0)
            }
        }
        text.family("batchman_jobs_pending", "gauge", "Jobs held now: waiting for a batch, in one, or awaiting a retry.")
        for entry in entries { text.sample("batchman_jobs_pending", [("key", entry)], byEntry[entry]?.pending ?? 0) }
        text.family("batchman_jobs_in_flight", "gauge", "Batches being processed now.")
        for entry in entries { text.sample("batchman_jobs_in_flight", [("key", entry)], byEntry[entry]?.inFlight ?? 0) }

        histogram(&text, "batchman_batch_size", "Jobs per batch handed to a plugin.", entries, snapshot.histograms) { $0.batchSize }
        histogram(&text, "batchman_batch_duration_seconds", "Time a plugin call took, from its start to its return (a worker's: its round trip).",
                  entries, snapshot.histograms) { $0.batchDuration }
        histogram(&text, "batchman_job_latency_seconds", "Time from a job's line being read to its result being handed to its output.",
                  entries, snapshot.histograms) { $0.jobLatency }

        text.family("batchman_plugin_crashes_total", "counter", "Plugin worker processes that died during a batch.")
        for entry in entries { text.sample("batchman_plugin_crashes_total", [("key", entry)], isolation[entry]?.crashes ?? 0) }
        text.family("batchman_worker_restarts_total", "counter", "Plugin worker processes started again after one died.")
        for entry in entries { text.sample("batchman_worker_restarts_total", [("key", entry)], isolation[entry]?.restarts ?? 0) }
        text.family("batchman_reloads_total", "counter", "Reloads of the manifest and plugins, by result.")
        text.sample("batchman_reloads_total", [("result", "ok")], snapshot.reloadsSucceeded)
        text.sample("batchman_reloads_total", [("result", "failed")], snapshot.reloadsFailed)
        text.family("batchman_output_pauses_total", "counter", "Times reading paused because results were not being read.")
        text.sample("batchman_output_pauses_total", [], snapshot.outputPauses)
        text.family("batchman_spool_bytes", "gauge", "Bytes in the spool's segments (0 without --spool).")
        text.sample("batchman_spool_bytes", [], snapshot.spoolBytes ?? 0)
        if let connections = snapshot.connections {
            text.family("batchman_connections", "gauge", "Clients connected to --listen sockets now.")
            text.sample("batchman_connections", [], connections)
        }
        text.family("batchman_results_orphaned_total", "counter", "Results dropped because their client had gone.")
        text.sample("batchman_results_orphaned_total", [], snapshot.orphaned)
        return text.output
    }

    private static func histogram(
        _ text: inout Text, _ name: String, _ help: String, _ entries: [String], _ histograms: [String: HostMetrics.Entry],
        _ which: (HostMetrics.Entry) -> Histogram
    ) {
        text.family(name, "histogram", help)
        for entry in entries {
            guard let histogram = histograms[entry].map(which) else { continue }
            let counts = histogram.snapshot
            var cumulative: UInt64 = 0
            for (index, bound) in histogram.bounds.enumerated() {
                cumulative += counts.buckets[index]
                text.sample(name + "_bucket", [("key", entry), ("le", Text.number(bound))], cumulative)
            }
            text.sample(name + "_bucket", [("key", entry), ("le", "+Inf")], counts.count)
            text.line("\(name)_sum\(Text.labels([("key", entry)])) \(Text.number(counts.sum))")
            text.sample(name + "_count", [("key", entry)], counts.count)
        }
    }

    /// The exposition's lines.
    struct Text {
        var output = ""

        mutating func line(_ line: String) {
            output += line
            output += "\n"
        }

        mutating func family(_ name: String, _ type: String, _ help: String) {
            line("# HELP \(name) \(help.replacing("\\", with: "\\\\").replacing("\n", with: "\\n"))")
            line("# TYPE \(name) \(type)")
        }

        mutating func sample(_ name: String, _ labels: [(String, String)], _ value: some BinaryInteger) {
            line("\(name)\(Self.labels(labels)) \(value)")
        }

        static func labels(_ labels: [(String, String)]) -> String {
            guard !labels.isEmpty else { return "" }
            return "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
        }

        /// A label value: backslash, double quote and newline escaped, as the format says.
        static func escape(_ value: String) -> String {
            var escaped = ""
            for character in value {
                switch character {
                case "\\": escaped += "\\\\"
                case "\"": escaped += "\\\""
                case "\n": escaped += "\\n"
                default: escaped.append(character)
                }
            }
            return escaped
        }

        /// A float as Prometheus reads it: `0.005`, `1`, `2.5`.
        static func number(_ value: Double) -> String {
            if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
            return "\(value)"
        }
    }
}
