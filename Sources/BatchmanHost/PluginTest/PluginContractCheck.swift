import Batchman
import CBatchmanPlugin
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// The checks of `batchman plugin-test`, in the order they run and are reported. Each runs in a
/// process of its own (see ``PluginTest``), so a plugin that crashes or hangs in one gets a
/// report for that check and the others still run.
public enum PluginContractCheck: String, CaseIterable, Sendable {
    case descriptor
    case create
    // Before `batches`: a sink with a UNIQUE (key, id) sees the author's jobs (--jobs) first,
    // before the batches' made-up ids can collide with theirs.
    case outcomes
    case batches
    case emptyPayload = "empty-payload"
    case largePayload = "large-payload"
    case invalidUTF8 = "invalid-utf8"
    case deepNesting = "deep-nesting"
    case retryAttempt = "retry-attempt"
    case concurrency
    case emitterLifetime = "emitter-lifetime"
    case destroy
    case timing

    /// What the check's report line calls it.
    var title: String {
        switch self {
        case .descriptor: "descriptor"
        case .create: "create"
        case .batches: "batches of 1 to 1000 jobs"
        case .outcomes: "outcomes"
        case .emptyPayload: "empty payloads"
        case .largePayload: "a 1 MiB payload"
        case .invalidUTF8: "invalid UTF-8 inside a JSON string"
        case .deepNesting: "10,000 levels of nesting"
        case .retryAttempt: "attempt > 1"
        case .concurrency: "concurrent calls"
        case .emitterLifetime: "emitter kept past its call"
        case .destroy: "destroy"
        case .timing: "speed"
        }
    }

    /// What a process running this check writes on its report descriptor: one line per
    /// outcome, `ok`, `FAIL` or `time`, then the title and what happened.
    static func line(_ verdict: String, _ check: PluginContractCheck, _ detail: String) -> String {
        verdict + String(repeating: " ", count: max(1, 5 - verdict.count)) + "\(check.title): \(detail)"
    }

    /// Runs this check against `library` in this process and returns its report lines and
    /// whether it passed. Loads the plugin and (but for `descriptor`) makes an instance first.
    /// `jobs`' payloads (the author's, or synthetic ones) fill the batches that are not about an
    /// edge case.
    func run(library: String, key: String, config: String, jobs: PluginTestJobs = .synthetic) -> (lines: [String], passed: Bool) {
        let plugin: LoadedPlugin
        do throws(PluginLoadError) {
            plugin = try PluginLoader(manifestDirectory: "/").load(library, forKey: key)
        } catch {
            return ([Self.line("FAIL", .descriptor, "expected a loadable Batchman plugin; \(error.description)")], false)
        }
        if self == .descriptor { return describe(plugin) }
        // Plugin log lines are shown once, when the instance is made for the `create` check.
        let logger: BatchmanLogger = self == .create ? .standardError : .silent
        let instance: PluginInstance
        do throws(PluginLoadError) {
            instance = try plugin.createInstance(plugin: library, key: key, config: config, debug: true, logger: logger)
        } catch {
            return ([Self.line("FAIL", .create, "expected an instance for key \"\(key)\" with config \(config); \(error.detail)")], false)
        }
        defer { if self != .destroy { instance.destroyNow() } }
        let probe = Prober(instance: instance, key: key)
        switch self {
        case .descriptor:
            preconditionFailure("handled above")
        case .create:
            return ([Self.line("ok", self, "made an instance for key \"\(key)\" with config \(config)")], true)
        case .batches:
            var problems: [String] = []
            for size in [1, 2, 10, 100, 1000] {
                problems += probe.check(probe.batch(count: size, payload: jobs.payload), named: "batch of \(size)")
            }
            let made = jobs.isSynthetic ? "" : " (payloads from \(jobs.source))"
            return report(problems, passed: "every job of batches of 1, 2, 10, 100 and 1000 jobs emitted exactly once, indices in range\(made)")
        case .outcomes:
            return probe.outcomes(of: jobs)
        case .emptyPayload:
            return report(probe.check(probe.batch(count: 3) { _ in [] }, named: "3 jobs with empty payloads"),
                          passed: "3 jobs with zero-byte payloads each emitted once")
        case .largePayload:
            let large = Array("\"".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20) + Array("\"".utf8)
            return report(probe.check(probe.batch(count: 2) { _ in large }, named: "2 jobs of 1 MiB"),
                          passed: "2 jobs with a 1 MiB JSON string each emitted once")
        case .invalidUTF8:
            let invalid: [UInt8] = Array(#"{"text":""#.utf8) + [0xFF, 0xFE, 0xC3, 0x28, 0xED, 0xA0, 0x80] + Array(#""}"#.utf8)
            return report(probe.check(probe.batch(count: 3) { _ in invalid }, named: "3 jobs with invalid UTF-8"),
                          passed: "3 jobs with bytes FF FE C3 28 ED A0 80 inside a JSON string each emitted once")
        case .deepNesting:
            let deep = [UInt8](repeating: UInt8(ascii: "["), count: 10_000) + [UInt8](repeating: UInt8(ascii: "]"), count: 10_000)
            return report(probe.check(probe.batch(count: 2) { _ in deep }, named: "2 jobs nested 10,000 deep"),
                          passed: "2 jobs of 10,000 nested arrays each emitted once")
        case .retryAttempt:
            let batch = probe.batch(count: 3, attempts: [2, 3, 10], payload: jobs.payload)
            return report(probe.check(batch, named: "jobs on attempts 2, 3 and 10"), passed: "jobs on attempts 2, 3 and 10 each emitted once")
        case .concurrency:
            guard plugin.isConcurrent else {
                return ([Self.line("ok", self, "not declared (BM_FLAG_CONCURRENT unset): the host makes one call at a time per instance")], true)
            }
            return report(probe.concurrently(threads: 4, batchesEach: 25, size: 100, payload: jobs.payload),
                          passed: "BM_FLAG_CONCURRENT: 4 threads x 25 batches of 100 jobs on one instance, every job emitted once")
        case .emitterLifetime:
            return probe.emitterLifetime(payload: jobs.payload)
        case .destroy:
            instance.destroyNow()
            return ([Self.line("ok", self, "returned")], true)
        case .timing:
            return ([Self.line("time", self, probe.timing(payload: jobs.payload))], true)
        }
    }

    private func describe(_ plugin: LoadedPlugin) -> (lines: [String], passed: Bool) {
        let descriptor = plugin.descriptor.pointee
        var problems: [String] = []
        if descriptor.name == nil || plugin.name.isEmpty { problems.append("name is NULL or empty") }
        if descriptor.version == nil || plugin.version.isEmpty { problems.append("version is NULL or empty") }
        let flags = descriptor.flags & BM_FLAG_CONCURRENT != 0 ? "BM_FLAG_CONCURRENT" : "none"
        let summary = "\"\(plugin.name)\" \(plugin.version), ABI \(descriptor.abi_major).\(descriptor.abi_minor), "
            + "struct_size \(descriptor.struct_size), flags \(flags)"
        guard problems.isEmpty else { return ([Self.line("FAIL", self, "expected a name and a version: \(problems.joined(separator: "; ")) (\(summary))")], false) }
        return ([Self.line("ok", self, summary)], true)
    }

    private func report(_ problems: [String], passed: String) -> (lines: [String], passed: Bool) {
        guard problems.isEmpty else {
            let shown = problems.prefix(6).joined(separator: "; ") + (problems.count > 6 ? "; and \(problems.count - 6) more" : "")
            return ([Self.line("FAIL", self, "expected every job emitted exactly once with an index in range; \(shown)")], false)
        }
        return ([Self.line("ok", self, passed)], true)
    }
}

/// Calls one instance the way the host does, with batches made for a check, and says what
/// broke the contract.
private struct Prober {
    let instance: PluginInstance
    let key: String

    func batch(count: Int, attempts: [Int]? = nil, payload: (Int) -> [UInt8]) -> Batch<JobBytes> {
        // Ids are the positions; a job of the author's file keeps its payload, not its id (the
        // outcomes check, which runs first, keeps the ids too).
        let jobs = (0..<count).map { index in
            Job(id: "\(index)", key: key, payload: payload(index)[...], attempt: attempts?[index % attempts!.count] ?? 1)
        }
        return Batch(id: UInt64.random(in: 1...UInt64(UInt32.max)), key: key, jobs: jobs, reason: .size)
    }

    /// What went wrong with `batch`'s call, one sentence per problem.
    func check(_ batch: Batch<JobBytes>, named name: String) -> [String] {
        let straysBefore = instance.strayEmits.count
        let probe = instance.probe(batch)
        var problems = probe.refusals.map { "\(name): \($0), refused (returned -1)" }
        let strays = instance.strayEmits
        if strays.count > straysBefore, let first = strays.first {
            problems.append("\(name): \(strays.count - straysBefore) emit() calls outside the running call, refused (returned -1): \(first.sentence)")
        }
        let missing = probe.statuses.indices.filter { probe.statuses[$0] == nil }
        if !missing.isEmpty {
            let returned = probe.returned == 0 ? "" : " (process_batch returned \(probe.returned)\(probe.message.isEmpty ? "" : ": \(probe.message)"))"
            let shown = missing.prefix(5).map(String.init).joined(separator: ", ") + (missing.count > 5 ? ", ..." : "")
            problems.append("\(name): \(missing.count) of \(batch.jobs.count) jobs not emitted (index \(shown))\(returned)")
        }
        return problems
    }

    func concurrently(threads: Int, batchesEach: Int, size: Int, payload: @escaping @Sendable (Int) -> [UInt8]) -> [String] {
        let problems = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for round in 0..<batchesEach {
                let found = check(batch(count: size, payload: payload), named: "thread \(thread), batch \(round)")
                if !found.isEmpty { problems.withLock { $0 += found } }
            }
        }
        return problems.withLock { $0 }
    }

    /// Runs `jobs` through the plugin once, in batches of up to 1000, and reports how their
    /// outcomes split. Fails if not one job completed: a plugin that fails every job it is given
    /// is broken, or was given jobs it does not take (then `--jobs FILE` gives it its own).
    func outcomes(of jobs: PluginTestJobs) -> (lines: [String], passed: Bool) {
        var counts = [BM_OK: 0, BM_FAILED: 0, BM_RETRY: 0]
        var notEmitted = 0
        var messages: [String] = []
        for start in stride(from: 0, to: jobs.jobs.count, by: 1000) {
            let part = jobs.jobs[start..<min(jobs.jobs.count, start + 1000)]
            let made = part.map { Job(id: $0.id, key: key, payload: $0.payload[...]) }
            let probe = instance.probe(Batch(id: UInt64(start + 1), key: key, jobs: made, reason: .size))
            for (index, status) in probe.statuses.enumerated() {
                guard let status else {
                    notEmitted += 1
                    continue
                }
                counts[status, default: 0] += 1
                let text = String(decoding: probe.data[index].prefix(120), as: UTF8.self)
                if status != BM_OK, messages.count < 3, !messages.contains(text) { messages.append(text) }
            }
        }
        let ok = counts[BM_OK]!, failed = counts[BM_FAILED]!, retry = counts[BM_RETRY]!
        var split = "\(jobs.jobs.count) \(jobs.isSynthetic ? "synthetic jobs" : "jobs from \(jobs.source)"): \(ok) ok, \(failed) failed, "
            + "\(retry) retry" + (notEmitted > 0 ? ", \(notEmitted) not emitted" : "")
        if !messages.isEmpty { split += "; first messages: " + messages.map { "\"\($0)\"" }.joined(separator: ", ") }
        guard ok > 0 else {
            let hint = jobs.isSynthetic
                ? #" (payloads like {"n":0,"text":"the quick brown fox"}); if your plugin takes other payloads, give your own with --jobs FILE"#
                : ""
            return ([PluginContractCheck.line("FAIL", .outcomes, "expected some jobs to complete; none did: \(split)\(hint)")], false)
        }
        return ([PluginContractCheck.line("ok", .outcomes, split)], true)
    }

    /// Calls three batches in a row, then waits a moment for emits a plugin makes later from a
    /// thread of its own: every `emit` outside its call (through a kept emitter, after the
    /// call returned, from another thread) is refused by the host, and its outcome lost.
    func emitterLifetime(payload: @escaping (Int) -> [UInt8]) -> (lines: [String], passed: Bool) {
        for _ in 0..<3 { _ = instance.probe(batch(count: 10, payload: payload)) }
        usleep(200_000)  // the plugin's own threads: a bounded grace, then what they did is counted
        let strays = instance.strayEmits
        guard strays.count > 0, let first = strays.first else {
            return ([PluginContractCheck.line("ok", .emitterLifetime, "3 batches in a row: every emit() came through the running call's emitter, during the call")], true)
        }
        return ([PluginContractCheck.line("FAIL", .emitterLifetime, "expected emit() only through the running call's emitter, during the call; "
                                          + "\(strays.count) emit() calls were not (the first: \(first.sentence)). The host refuses each (-1) and "
                                          + "its outcome is lost: emit through the `out` of the call that owns the job, before process_batch returns")], false)
    }

    /// Calls batches of 1000 jobs for about a second (at least 3 batches).
    func timing(payload: (Int) -> [UInt8]) -> String {
        let size = 1000
        let batch = batch(count: size, payload: payload)
        let start = ContinuousClock.now
        var calls = 0
        while calls < 3 || ContinuousClock.now - start < .seconds(1) {
            _ = instance.probe(batch)
            calls += 1
        }
        let elapsed = (ContinuousClock.now - start).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        let perBatch = Int(Double(calls) / seconds)
        let perJob = Int(seconds / Double(calls * size) * 1e9)
        return "\(perBatch) batches/s, \(perJob) ns/job (\(calls) batches of \(size) jobs on one thread, host overhead included)"
    }
}
