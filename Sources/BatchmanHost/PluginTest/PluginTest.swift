import Batchman
import CBatchmanSystem
import FoundationEssentials
import Glibc

/// `batchman plugin-test LIB.so [--config JSON] [--key K] [--jobs FILE]`: what a plugin author
/// runs before shipping a plugin.
public struct PluginTestOptions: Equatable, Sendable {
    public var library: String
    public var config = "{}"
    public var key = "plugin-test"
    /// NDJSON jobs of the author's own (``PluginTestJobs``); nil: synthetic ones.
    public var jobs: String?
    /// How long one check may take before its process is killed as hung.
    public var timeout: Duration = .seconds(10)
    /// Set in a process plugin-test starts to run one check.
    public var check: PluginContractCheck?

    public init(library: String) {
        self.library = library
    }
}

/// Loads a plugin the way the host does and exercises its contract, one check per process: a
/// plugin that crashes, hangs or calls `exit()` in one check gets a report for it, and the
/// other checks still run. Prints one line per check (`ok` or `FAIL` with what was expected and
/// what happened) and a timing line, and exits 0 only if every check passed.
public enum PluginTest {
    /// Where a check's process writes its report lines: standard output is the plugin's, and
    /// anything on it is a finding.
    static let reportDescriptor: Int32 = 3

    /// Runs every check and prints the report on standard output.
    /// - Returns: the exit status: 0 if every check passed, 1 if not.
    public static func run(_ options: PluginTestOptions) -> Int32 {
        if let check = options.check { runOne(check, options) }
        var options = options
        if let jobs = options.jobs {
            // Read once here, so that a file that is not jobs is one clear error, not a FAIL per check.
            if case .failure(let error) = PluginTestJobs.read(jobs) {
                FileIO.writeAll(STDERR_FILENO, Array("batchman: error: \(error.message)\n".utf8))
                return error.exitCode
            }
            if !jobs.hasPrefix("/") { options.jobs = "\(FileManager.default.currentDirectoryPath)/\(jobs)" }
        }
        let library = options.library.hasPrefix("/") ? options.library : "\(FileManager.default.currentDirectoryPath)/\(options.library)"
        var failed = false
        var skipReason: String?
        if !FileManager.default.fileExists(atPath: library) {
            emit(PluginContractCheck.line("FAIL", .descriptor, "expected a plugin library at \(library); there is no such file (build the plugin first)"))
            failed = true
            skipReason = "the plugin did not load"
        }
        var writes: [(PluginContractCheck, [UInt8])] = []
        for check in PluginContractCheck.allCases {
            if check == .descriptor, failed { continue }  // reported above
            if let skipReason {
                emit(PluginContractCheck.line(check == .timing ? "time" : "FAIL", check, "not run: \(skipReason)"))
                failed = failed || check != .timing
                continue
            }
            var childOptions = options
            childOptions.library = library
            childOptions.check = check
            let outcome = CheckProcess.run(childOptions, timeout: options.timeout)
            if !outcome.output.isEmpty { writes.append((check, outcome.output)) }
            for line in outcome.lines { emit(line) }
            let passed = outcome.passed && !outcome.lines.contains { $0.hasPrefix("FAIL") }
            if outcome.lines.isEmpty || !outcome.ended.isNormal {
                emit(PluginContractCheck.line("FAIL", check, outcome.ended.sentence))
            }
            if !passed || !outcome.ended.isNormal {
                failed = true
                if check == .descriptor { skipReason = "the plugin did not load" }
                if check == .create { skipReason = "the plugin made no instance" }
                if case .timedOut = outcome.ended { skipReason = "the plugin hung in \(check.title)" }
            }
        }
        let line = standardOutputLine(writes)
        emit(line)
        return failed || line.hasPrefix("FAIL") ? 1 : 0
    }

    private static func emit(_ line: String) {
        FileIO.writeAll(STDOUT_FILENO, Array((line + "\n").utf8))
    }

    private static func standardOutputLine(_ writes: [(PluginContractCheck, [UInt8])]) -> String {
        guard let first = writes.first else {
            return "ok   standard output: nothing written (results travel through emit; logs through host->log)"
        }
        let total = writes.reduce(0) { $0 + $1.1.count }
        let sample = String(decoding: first.1.prefix(60), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n")
        return "FAIL standard output: expected nothing written; the plugin wrote \(total) bytes (during "
            + writes.map(\.0.title).joined(separator: ", ") + "), starting \"\(sample)\". "
            + "The host's standard output carries results: log with host->log instead"
    }

    /// In the process started for `check`: runs it, writes its lines on the report descriptor,
    /// and exits 0 if it passed, 1 if not.
    private static func runOne(_ check: PluginContractCheck, _ options: PluginTestOptions) -> Never {
        _ = bm_set_parent_death_signal(SIGKILL)
        let jobs = options.jobs.flatMap { try? PluginTestJobs.read($0).get() } ?? .synthetic
        let (lines, passed) = check.run(library: options.library, key: options.key, config: options.config, jobs: jobs)
        var report = lines.map { $0 + "\n" }.joined()
        report.withUTF8 { bytes in _ = write(reportDescriptor, bytes.baseAddress, bytes.count) }
        close(reportDescriptor)
        ProcessExitGuard.exit(passed ? 0 : 1)
    }
}

/// One check's process: started with its report pipe on descriptor 3 and its standard output
/// on a pipe of its own, watched until it ends or its time is up.
private enum CheckProcess {
    enum End {
        case exited(Int32)
        case signaled(Int32)
        case timedOut(Duration)

        /// Exited by itself with 0 or 1 (passed or not): anything else is the plugin's doing.
        var isNormal: Bool {
            if case .exited(let status) = self { return status == 0 || status == 1 }
            return false
        }

        var sentence: String {
            switch self {
            case .exited(70): "expected the call to return; the plugin called exit() (the host stops with status 70 when it does)"
            case .exited(let status): "expected a report; the check's process ended with status \(status)"
            case .signaled(let signal): "expected the call to return; the plugin crashed (\(SignalName.of(signal))) during this check"
            case .timedOut(let timeout): "expected the call to return; no answer within \(timeout) (--timeout): the plugin hung, and was killed"
            }
        }
    }

    struct Outcome {
        var lines: [String] = []
        var output: [UInt8] = []
        var ended = End.exited(0)
        var passed: Bool { if case .exited(0) = ended { true } else { false } }
    }

    static func run(_ options: PluginTestOptions, timeout: Duration) -> Outcome {
        guard case .success(let reportPipe) = Syscall.pipe(), case .success(let outputPipe) = Syscall.pipe() else {
            return Outcome(lines: [PluginContractCheck.line("FAIL", options.check!, "cannot create pipes: \(Errno.current)")], ended: .exited(2))
        }
        let report = [reportPipe.read, reportPipe.write], output = [outputPipe.read, outputPipe.write]
        var arguments = ["batchman", "plugin-test", options.library, "--config", options.config, "--key", options.key]
        if let jobs = options.jobs { arguments += ["--jobs", jobs] }
        arguments += ["--check", options.check!.rawValue]
        let pid = spawn(arguments, report: report[1], output: output[1])
        close(report[1])
        close(output[1])
        defer {
            close(report[0])
            close(output[0])
        }
        guard let pid else {
            return Outcome(lines: [PluginContractCheck.line("FAIL", options.check!, "cannot start a process for the check: \(Errno.current)")], ended: .exited(2))
        }
        var outcome = Outcome()
        var reportBytes: [UInt8] = []
        let timedOut = !drain(report[0], into: &reportBytes, and: output[0], into: &outcome.output, for: timeout)
        if timedOut { kill(pid, SIGKILL) }
        let ended = (try? Syscall.wait(for: pid).get()) ?? nil
        if timedOut {
            outcome.ended = .timedOut(timeout)
        } else {
            switch ended ?? .exited(2) {
            case .signaled(let signal): outcome.ended = .signaled(signal)
            case .exited(let status): outcome.ended = .exited(status)
            }
        }
        outcome.lines = String(decoding: reportBytes, as: UTF8.self).split(separator: "\n").map(String.init)
        return outcome
    }

    /// Reads both pipes until both are closed; false if the check's time ran out first.
    private static func drain(
        _ first: Int32, into firstBytes: inout [UInt8], and second: Int32, into secondBytes: inout [UInt8], for timeout: Duration
    ) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var open = [first: true, second: true]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while open.values.contains(true) {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return false }
            var descriptors = open.filter(\.value).keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard case .success = Syscall.poll(&descriptors, milliseconds: Int32(min(left.nanosecondsClamped / 1_000_000 + 1, 1000))) else { return true }
            for descriptor in descriptors where descriptor.revents != 0 {
                let count = (try? buffer.withUnsafeMutableBytes({ Syscall.read(descriptor.fd, into: $0) }).get()) ?? 0
                if count <= 0 {
                    open[descriptor.fd] = false
                } else if descriptor.fd == first {
                    firstBytes += buffer[..<count]
                } else if secondBytes.count < 4096 {
                    secondBytes += buffer[..<min(count, 4096 - secondBytes.count)]
                }
            }
        }
        return true
    }

    private static func spawn(_ arguments: [String], report: Int32, output: Int32) -> pid_t? {
        // A crash is reported by the parent in one line: no Swift backtrace of the check's
        // process (which would name the host's frames, not the plugin's bug).
        switch SelfSpawn.start(arguments, descriptors: [(output, STDOUT_FILENO), (report, PluginTest.reportDescriptor)],
                               ownProcessGroup: false, environment: SelfSpawn.environment(setting: "SWIFT_BACKTRACE", to: "enable=no")) {
        case .success(let pid):
            return pid
        case .failure(let failure):
            errno = failure.errno
            return nil
        }
    }
}
