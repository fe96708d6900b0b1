import Foundation
import Glibc

/// One figure of one workload: every run's value, summarised as median and range.
struct Figure {
    let workload: String
    let variant: String
    let metric: String
    let unit: String
    let values: [Double]

    var sorted: [Double] { values.sorted() }
    var median: Double {
        let sorted = sorted
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
    var minimum: Double { sorted.first ?? .nan }
    var maximum: Double { sorted.last ?? .nan }
}

/// Process-level readings: peak and current resident memory, CPU time.
enum ProcessMeter {
    /// Resets the kernel's peak-RSS mark (VmHWM) so the next reading covers only what follows.
    static func resetPeakResident() {
        let descriptor = open("/proc/self/clear_refs", O_WRONLY)
        guard descriptor >= 0 else { return }
        _ = write(descriptor, "5", 1)
        close(descriptor)
    }

    static func peakResidentMiB() -> Double { statusField("VmHWM:") / 1024 }
    static func residentKiB() -> Double { statusField("VmRSS:") }

    /// User plus system CPU seconds of this process so far.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    private static func statusField(_ name: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
              let value = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return .nan }
        return value
    }
}

/// Seconds elapsed since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = start.duration(to: .now)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// The `fraction` percentile (0...1) of `values`, nearest rank.
func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// Runs a child process to completion; returns its wall time, its standard error, and status.
///
/// Not wait4's ru_maxrss for memory: for a child spawned from this (large) process it reports
/// this process's footprint. The host reports its own peak (VmHWM) on its statistics line.
func runChild(_ executable: String, _ arguments: [String], stdinPath: String? = nil, stdoutPath: String = "/dev/null") -> (seconds: Double, errorOutput: String, status: Int32) {
    let errorPath = FileManager.default.temporaryDirectory.appendingPathComponent("batchman-bench-stderr-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: errorPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdinPath { posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0) }
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let start = ContinuousClock.now
    guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else { return (.nan, "", -1) }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    let elapsed = seconds(since: start)
    return (elapsed, (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "", status)
}
