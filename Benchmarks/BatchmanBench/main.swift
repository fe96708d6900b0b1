// batchman-bench: measures Batchman against its limits and against baselines taken in the same
// run. Build and run in release: swift build -c release && swift run -c release batchman-bench
// [--json] [--only W1,H1]
import Batchman
import Foundation

struct Options {
    var json = false
    var only: Set<String>?
    var runs = 5

    init(_ arguments: [String]) {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--json": json = true
            case "--only": only = Set((rest.popFirst() ?? "").split(separator: ",").map { String($0).uppercased() })
            case "--runs": runs = max(1, Int(rest.popFirst() ?? "") ?? 5)
            case "--help", "-h":
                print("usage: batchman-bench [--json] [--only W1,W2,W3,W4,W5,W6,W7,H1,H2,H3,H4,H5,H6,H7] [--runs N]")
                exit(0)
            default:
                FileHandle.standardError.write(Data("batchman-bench: unknown argument \(argument)\n".utf8))
                exit(64)
            }
        }
    }

    func wants(_ workload: String) -> Bool { only?.contains(workload) ?? true }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
var figures: [Figure] = []

@MainActor func record(_ workload: String, _ variant: String, _ metric: String, _ unit: String, _ values: [Double]) {
    let figure = Figure(workload: workload, variant: variant, metric: metric, unit: unit, values: values)
    figures.append(figure)
    if options.json {
        let line = #"{"workload":"\#(workload)","variant":"\#(variant)","metric":"\#(metric)","unit":"\#(unit)","median":\#(figure.median),"min":\#(figure.minimum),"max":\#(figure.maximum),"runs":\#(values.count)}"#
        print(line)
    } else {
        FileHandle.standardError.write(Data("  measured \(workload) \(variant) \(metric)\n".utf8))
    }
}

#if DEBUG
FileHandle.standardError.write(Data("batchman-bench: this is a debug build; figures are meaningless. Run: swift build -c release && swift run -c release batchman-bench\n".utf8))
#endif

// H1 and H2 run the host and plugins that `swift build` puts beside this executable; `swift run`
// builds only what this executable links. Say so instead of failing half-way.
if options.wants("H1") || options.wants("H2") || options.wants("H3") || options.wants("H4") || options.wants("H5") || options.wants("H6") || options.wants("H7") {
    let missing = ["batchman", "libNoopPlugin.so", "libEchoPlugin.so"].filter {
        !FileManager.default.fileExists(atPath: HostWorkloads.products.appendingPathComponent($0).path)
    }
    if !missing.isEmpty {
        let message = "batchman-bench: H1, H2 and H3 need \(missing.joined(separator: ", ")) beside this executable "
            + "(\(HostWorkloads.products.path)); build everything first:\n"
            + "  swift build -c release && swift run -c release batchman-bench\n"
            + "or leave them out: swift run -c release batchman-bench --only W1,W2,W3,W4,W5\n"
        FileHandle.standardError.write(Data(message.utf8))
        exit(66)
    }
}

let runs = options.runs
let jobs = 1_000_000

if options.wants("W1") || options.wants("H2") || options.wants("W6") {
    let floor = await (0..<runs).asyncMap { _ in await CoreWorkloads.floor(jobs: jobs) }
    record("W1", "floor", "ns_per_job", "ns", floor)
    if options.wants("W6") {
        let batched = try await (0..<runs).asyncMap { _ in try await CoreWorkloads.throughputBatchSubmit(jobs: jobs) }
        record("W6", "submit(contentsOf:)", "ns_per_job", "ns", batched)
        record("W6", "submit(contentsOf:)", "jobs_per_s", "jobs/s", batched.map { 1e9 / $0 })
        record("W6", "submit(contentsOf:)", "x_floor", "ratio", batched.map { $0 / Figure(workload: "", variant: "", metric: "", unit: "", values: floor).median })
        let sunk = try await (0..<runs).asyncMap { _ in try await CoreWorkloads.throughputBatchSubmitToSink(jobs: jobs) }
        record("W6", "submit(contentsOf:to:), sink", "ns_per_job", "ns", sunk)
        record("W6", "submit(contentsOf:to:), sink", "jobs_per_s", "jobs/s", sunk.map { 1e9 / $0 })
        record("W6", "submit(contentsOf:to:), sink", "x_floor", "ratio", sunk.map { $0 / Figure(workload: "", variant: "", metric: "", unit: "", values: floor).median })
    }
    if options.wants("W1") {
        var callback: [Double] = [], peak: [Double] = []
        for _ in 0..<runs {
            let (nanoseconds, peakMiB) = try await CoreWorkloads.throughputCallback(jobs: jobs)
            callback.append(nanoseconds)
            peak.append(peakMiB)
        }
        record("W1", "callback", "ns_per_job", "ns", callback)
        record("W1", "callback", "jobs_per_s", "jobs/s", callback.map { 1e9 / $0 })
        record("W1", "callback", "x_floor", "ratio", callback.map { $0 / Figure(workload: "", variant: "", metric: "", unit: "", values: floor).median })
        record("W1", "callback", "peak_rss", "MiB", peak)
        let awaited = try await (0..<runs).asyncMap { _ in try await CoreWorkloads.throughputAwait(jobs: jobs) }
        record("W1", "await", "ns_per_job", "ns", awaited)
        record("W1", "await", "jobs_per_s", "jobs/s", awaited.map { 1e9 / $0 })
    }
    if options.wants("H2") {
        let cABI = try await (0..<runs).asyncMap { _ in try await HostWorkloads.cABIThroughput(jobs: jobs) }
        record("H2", "c-abi noop", "ns_per_job", "ns", cABI)
        record("H2", "c-abi noop", "jobs_per_s", "jobs/s", cABI.map { 1e9 / $0 })
    }
}

if options.wants("W2") {
    let manyKeys = try await (0..<runs).asyncMap { _ in try await CoreWorkloads.manyKeys(keys: 1000, perKey: 1000) }
    record("W2", "1000 keys", "ns_per_job", "ns", manyKeys)
    record("W2", "1000 keys", "jobs_per_s", "jobs/s", manyKeys.map { 1e9 / $0 })
}

if options.wants("W3") {
    let lateness = try await CoreWorkloads.timerLateness(duration: .seconds(3))
    record("W3", "50 ms frequency", "lateness_p50", "ms", [percentile(lateness, 0.5)])
    record("W3", "50 ms frequency", "lateness_p99", "ms", [percentile(lateness, 0.99)])
    record("W3", "50 ms frequency", "lateness_max", "ms", [lateness.max() ?? .nan])
}

if options.wants("W4") {
    var p50: [Double] = [], p99: [Double] = []
    for _ in 0..<runs {
        let latencies = try await CoreWorkloads.sizeTriggerLatency(jobs: 10_000)
        p50.append(percentile(latencies, 0.5))
        p99.append(percentile(latencies, 0.99))
    }
    record("W4", "size trigger", "latency_p50", "us", p50)
    record("W4", "size trigger", "latency_p99", "us", p99)
    // The same with room for every batch at once: the trigger alone, no queueing.
    var roomP50: [Double] = [], roomP99: [Double] = []
    for _ in 0..<runs {
        let latencies = try await CoreWorkloads.sizeTriggerLatency(jobs: 10_000, maxInFlight: 1000)
        roomP50.append(percentile(latencies, 0.5))
        roomP99.append(percentile(latencies, 0.99))
    }
    record("W4", "size trigger, room", "latency_p50", "us", roomP50)
    record("W4", "size trigger, room", "latency_p99", "us", roomP99)
}

if options.wants("W5") {
    let (cpu, heapBytes, residentBytes) = try await CoreWorkloads.idleKeys(keys: 100_000, idle: .seconds(5))
    record("W5", "100k idle keys", "cpu_while_idle", "ms", [cpu * 1000])
    record("W5", "100k idle keys", "heap_bytes_per_pending_job", "B", [heapBytes])
    record("W5", "100k idle keys", "resident_bytes_per_pending_job", "B", [residentBytes])
}

if options.wants("W7") {
    let (drain, heapBytes) = try await CoreWorkloads.idleDrain(keys: 200_000)
    record("W7", "200k idle keys", "drain_s", "s", [drain])
    record("W7", "200k idle keys", "heap_bytes_per_idle_key", "B", [heapBytes])
}

if options.wants("H7") {
    // H7 (H6 until the NATS benchmark took that name): 200,000 distinct keys with one job each through one shared EchoPlugin instance, against
    // the same 200,000 jobs on one key in the same run: the whole run's time (read, batch, answer,
    // drain, exit) and the peak resident memory each key adds.
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("batchman-bench-h7-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let keys = 200_000
    let spread = try HostWorkloads.makeInput(lines: keys, keys: keys, name: "keys.ndjson", in: folder).path
    let single = try HostWorkloads.makeInput(lines: keys, keys: 1, name: "one-key.ndjson", in: folder).path
    let manifest = try HostWorkloads.makeManifest(plugin: "EchoPlugin", instances: "shared", frequency: 1000, in: folder)
    let batchman = HostWorkloads.products.appendingPathComponent("batchman").path
    var medians: [String: (seconds: Double, peak: Double)] = [:]
    for (name, input) in [("1 key, shared echo", single), ("200k keys, shared echo", spread)] {
        var times: [Double] = [], peaks: [Double] = []
        for _ in 0..<max(1, runs / 2 + 1) {
            let run = runChild(batchman, ["run", manifest, "--input", input])
            precondition(run.status == 0, "\(name) failed with status \(run.status): \(run.errorOutput)")
            times.append(run.seconds)
            if let peak = run.errorOutput.split(separator: "peakRSS=").last.flatMap({ Double($0.prefix { $0 != "M" }) }) { peaks.append(peak) }
        }
        record("H7", name, "run_s", "s", times)
        record("H7", name, "peak_rss", "MiB", peaks)
        medians[name] = (Figure(workload: "", variant: "", metric: "", unit: "", values: times).median,
                         Figure(workload: "", variant: "", metric: "", unit: "", values: peaks).median)
    }
    if let one = medians["1 key, shared echo"], let many = medians["200k keys, shared echo"] {
        record("H7", "200k keys, shared echo", "rss_bytes_per_key_beyond_1_key", "B", [(many.peak - one.peak) * 1_048_576 / Double(keys)])
        record("H7", "200k keys, shared echo", "x_1_key", "ratio", [many.seconds / one.seconds])
    }
}

if options.wants("H6") {
    // H6: one host on a single-node JetStream, against the raw fetch + publish + ack loop.
    if let nats = try NATSWorkload.measure(jobs: 200_000, keys: 100, runs: max(1, runs / 2 + 1)) {
        record("H6", "ceiling: fetch, publish, ack", "jobs_per_s", "jobs/s", nats.ceiling)
        let ceiling = Figure(workload: "", variant: "", metric: "", unit: "", values: nats.ceiling).median
        for (name, rates) in nats.hosts {
            record("H6", name, "jobs_per_s", "jobs/s", rates)
            record("H6", name, "x_ceiling", "ratio", [Figure(workload: "", variant: "", metric: "", unit: "", values: rates).median / ceiling])
        }
    } else {
        FileHandle.standardError.write(Data("batchman-bench: H6 needs nats-server (Debian's nats-server package); skipped\n".utf8))
    }
}

if options.wants("H1") || options.wants("H3") || options.wants("H4") || options.wants("H5") {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("batchman-bench-\(getpid())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let (input, bytes) = try HostWorkloads.makeInput(lines: jobs, in: folder)
    let batchman = HostWorkloads.products.appendingPathComponent("batchman").path
    var variants: [(String, String, String, [String])] = [
        ("H1", "cat (floor)", "/bin/cat", [input]),
        ("H1", "host + echo plugin", batchman, ["run", try HostWorkloads.makeManifest(plugin: "EchoPlugin", in: folder), "--input", input]),
    ]
    if options.wants("H1") {
        variants.insert(("H1", "host + noop plugin", batchman, ["run", try HostWorkloads.makeManifest(plugin: "NoopPlugin", in: folder), "--input", input]), at: 1)
    }
    if options.wants("H3") {
        // H3: H1's workload through EchoPlugin in a worker process ("isolation": "process").
        variants.append(("H3", "host + echo plugin, isolated", batchman,
                         ["run", try HostWorkloads.makeManifest(plugin: "EchoPlugin", isolation: "process", in: folder), "--input", input]))
    }
    if options.wants("H4") {
        // H4: H1's EchoPlugin run with a spool, per --fsync policy. Each run gets a fresh spool
        // (a used one would resume at the end of the input).
        for policy in ["never", "interval", "always"] {
            variants.append(("H4", "host + echo plugin, spool fsync \(policy)", batchman,
                             ["run", try HostWorkloads.makeManifest(plugin: "EchoPlugin", in: folder), "--input", input,
                              "--spool", folder.appendingPathComponent("spool-\(policy)").path, "--fsync", policy]))
        }
    }
    var medians: [String: Double] = [:]
    for (workload, name, executable, arguments) in variants {
        var times: [Double] = [], peaks: [Double] = []
        for _ in 0..<max(1, runs / 2 + 1) {
            if let spool = arguments.firstIndex(of: "--spool").map({ arguments[$0 + 1] }) { try? FileManager.default.removeItem(atPath: spool) }
            let run = runChild(executable, arguments)
            precondition(run.status == 0, "\(name) failed with status \(run.status): \(run.errorOutput)")
            times.append(run.seconds)
            // The host's own statistics line: "... peakRSS=12.3MiB".
            if let peak = run.errorOutput.split(separator: "peakRSS=").last.flatMap({ Double($0.prefix { $0 != "M" }) }) {
                peaks.append(peak)
            }
        }
        record(workload, name, "lines_per_s", "lines/s", times.map { Double(jobs) / $0 })
        record(workload, name, "mb_per_s", "MB/s", times.map { Double(bytes) / 1e6 / $0 })
        record(workload, name, "ns_per_job", "ns", times.map { $0 * 1e9 / Double(jobs) })
        if !peaks.isEmpty { record(workload, name, "peak_rss", "MiB", peaks) }
        medians[name] = Figure(workload: "", variant: "", metric: "", unit: "", values: times).median
    }
    if let cat = medians["cat (floor)"], let echo = medians["host + echo plugin"] {
        record("H1", "host + echo plugin", "x_cat", "ratio", [echo / cat])
    }
    for policy in ["never", "interval", "always"] {
        guard let echo = medians["host + echo plugin"], let spooled = medians["host + echo plugin, spool fsync \(policy)"] else { continue }
        record("H4", "host + echo plugin, spool fsync \(policy)", "x_without_spool", "ratio", [spooled / echo])
    }
    if let echo = medians["host + echo plugin"], let isolated = medians["host + echo plugin, isolated"] {
        // What isolation adds per job, against the in-process run of the same input.
        record("H3", "host + echo plugin, isolated", "overhead_ns_per_job", "ns", [(isolated - echo) * 1e9 / Double(jobs)])
        record("H3", "host + echo plugin, isolated", "x_in_process", "ratio", [isolated / echo])
    }
    if options.wants("H5"), let echo = medians["host + echo plugin"] {
        // H5: the same million jobs from 8 clients at once on a Unix socket (125,000 each), next
        // to H1's run of them from a file: throughput as a service, and each job's round trip.
        let manifest = try HostWorkloads.makeManifest(plugin: "EchoPlugin", in: folder)
        var times: [Double] = [], p50: [Double] = [], p99: [Double] = [], peaks: [Double] = []
        for _ in 0..<max(1, runs / 2 + 1) {
            var outcome = try SocketWorkload.run(batchman: batchman, manifest: manifest, clients: 8, jobs: jobs, in: folder)
            outcome.roundTrips.sort()
            times.append(outcome.seconds)
            p50.append(outcome.roundTrips[outcome.roundTrips.count / 2] / 1000)
            p99.append(outcome.roundTrips[outcome.roundTrips.count * 99 / 100] / 1000)
            if let peak = outcome.peakMiB { peaks.append(peak) }
        }
        let name = "8 clients, unix socket, echo plugin"
        record("H5", name, "lines_per_s", "lines/s", times.map { Double(jobs) / $0 })
        record("H5", name, "round_trip_p50", "ms", p50)
        record("H5", name, "round_trip_p99", "ms", p99)
        if !peaks.isEmpty { record("H5", name, "peak_rss", "MiB", peaks) }
        // Throughput as a share of H1's (H1's time over H5's): the target is at least 0.7.
        record("H5", name, "x_H1_throughput", "ratio", [echo / Figure(workload: "", variant: "", metric: "", unit: "", values: times).median])
    }
}

if !options.json {
    print("| workload | variant | metric | median | min | max | runs |")
    print("|---|---|---|---:|---:|---:|---:|")
    for figure in figures {
        func format(_ value: Double) -> String {
            if value.isNaN { return "-" }
            if abs(value) >= 1000 { return String(format: "%.0f", value) }
            if abs(value) >= 10 { return String(format: "%.1f", value) }
            return String(format: "%.3f", value)
        }
        print("| \(figure.workload) | \(figure.variant) | \(figure.metric) (\(figure.unit)) | \(format(figure.median)) | \(format(figure.minimum)) | \(format(figure.maximum)) | \(figure.values.count) |")
    }
}

extension Range where Bound == Int {
    func asyncMap<T>(_ transform: (Int) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for index in self { results.append(try await transform(index)) }
        return results
    }
}
