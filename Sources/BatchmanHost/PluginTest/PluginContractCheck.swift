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
    case batches
    case emptyPayload = "empty-payload"
    case largePayload = "large-payload"
    case invalidUTF8 = "invalid-utf8"
    case deepNesting = "deep-nesting"
    case retryAttempt = "retry-attempt"
    case concurrency
    case destroy
    case timing

    /// What the check's report line calls it.
    var title: String {
        switch self {
        case .descriptor: "descriptor"
        case .create: "create"
        case .batches: "batches of 1 to 1000 jobs"
        case .emptyPayload: "empty payloads"
        case .largePayload: "a 1 MiB payload"
        case .invalidUTF8: "invalid UTF-8 inside a JSON string"
        case .deepNesting: "10,000 levels of nesting"
        case .retryAttempt: "attempt > 1"
        case .concurrency: "concurrent calls"
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
    func run(library: String, key: String, config: String) -> (lines: [String], passed: Bool) {
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
                problems += probe.check(probe.batch(count: size) { Array(#"{"n":\#($0),"text":"the quick brown fox"}"#.utf8) }, named: "batch of \(size)")
            }
            return report(problems, passed: "every job of batches of 1, 2, 10, 100 and 1000 jobs emitted exactly once, indices in range")
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
            let batch = probe.batch(count: 3, attempts: [2, 3, 10]) { Array(#"{"n":\#($0)}"#.utf8) }
            return report(probe.check(batch, named: "jobs on attempts 2, 3 and 10"), passed: "jobs on attempts 2, 3 and 10 each emitted once")
        case .concurrency:
            guard plugin.isConcurrent else {
                return ([Self.line("ok", self, "not declared (BM_FLAG_CONCURRENT unset): the host makes one call at a time per instance")], true)
            }
            return report(probe.concurrently(threads: 4, batchesEach: 25, size: 100),
                          passed: "BM_FLAG_CONCURRENT: 4 threads x 25 batches of 100 jobs on one instance, every job emitted once")
        case .destroy:
            instance.destroyNow()
            return ([Self.line("ok", self, "returned")], true)
        case .timing:
            return ([Self.line("time", self, probe.timing())], true)
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
        let jobs = (0..<count).map { index in
            Job(id: "\(index)", key: key, payload: payload(index)[...], attempt: attempts?[index % attempts!.count] ?? 1)
        }
        return Batch(id: UInt64.random(in: 1...UInt64(UInt32.max)), key: key, jobs: jobs, reason: .size)
    }

    /// What went wrong with `batch`'s call, one sentence per problem.
    func check(_ batch: Batch<JobBytes>, named name: String) -> [String] {
        let probe = instance.probe(batch)
        var problems = probe.refusals.map { "\(name): \($0), refused (returned -1)" }
        let missing = probe.emitted.indices.filter { !probe.emitted[$0] }
        if !missing.isEmpty {
            let returned = probe.returned == 0 ? "" : " (process_batch returned \(probe.returned)\(probe.message.isEmpty ? "" : ": \(probe.message)"))"
            let shown = missing.prefix(5).map(String.init).joined(separator: ", ") + (missing.count > 5 ? ", ..." : "")
            problems.append("\(name): \(missing.count) of \(batch.jobs.count) jobs not emitted (index \(shown))\(returned)")
        }
        return problems
    }

    func concurrently(threads: Int, batchesEach: Int, size: Int) -> [String] {
        let problems = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for round in 0..<batchesEach {
                let found = check(batch(count: size) { Array(#"{"thread":\#(thread),"n":\#($0)}"#.utf8) },
                                  named: "thread \(thread), batch \(round)")
                if !found.isEmpty { problems.withLock { $0 += found } }
            }
        }
        return problems.withLock { $0 }
    }

    /// Calls batches of 1000 jobs for about a second (at least 3 batches).
    func timing() -> String {
        let size = 1000
        let batch = batch(count: size) { Array(#"{"n":\#($0),"text":"the quick brown fox"}"#.utf8) }
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
