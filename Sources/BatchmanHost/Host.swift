import Batchman
import FoundationEssentials
import Glibc

/// The `batchman` host: manifest, plugins, NDJSON in, NDJSON out.
public enum Host {
    /// Runs the host until end of input or a signal, then drains every accepted job.
    ///
    /// Call ``prepareProcess()`` first, before any thread exists. Diagnostics go to `logger`
    /// (standard error), results to the output.
    /// - Throws: ``HostError``; nothing accepted is lost when it is thrown after start-up,
    ///   unless output failed (then every accepted job is failed and counted).
    public static func run(_ options: RunOptions, logger given: BatchmanLogger? = nil) async throws(HostError) {
        LogFormat.setCurrent(options.logFormat)
        let progress = wantsProgress(options) ? ProgressReporter() : nil
        var clearProgress: (@Sendable () -> String)?
        if let progress { clearProgress = { progress.clearLine() } }
        let logger = given ?? options.logFormat.logger(timestamps: options.logTimestamps, beforeEachLine: clearProgress)
        let session = try HostSession(options: options, logger: logger, progress: progress)
        defer { session.close() }
        try session.open()
        try await session.run()
    }

    /// `--progress` is drawn for `--input FILE`: when asked, or by default on a terminal.
    static func wantsProgress(_ options: RunOptions) -> Bool {
        guard let input = options.inputPath, input != "-" else { return false }
        return options.progress ?? (isatty(STDERR_FILENO) == 1)
    }

    /// Loads every plugin and makes one instance of each entry (one worker, for an isolated
    /// one), to prove they can be made, then releases them.
    /// - Returns: a report of what was loaded.
    /// - Throws: ``HostError`` listing every problem found.
    public static func check(manifestPath: String, logger: BatchmanLogger = .standardError) throws(HostError) -> String {
        let manifest = try loadManifest(manifestPath)
        let control = WorkerPool(name: "batchman-control", threads: 1)
        let workers = WorkerPool(name: "batchman-worker", threads: 1)
        defer {
            control.stop()
            workers.stop()
        }
        let registry = try PluginRegistry(manifest: manifest, control: control, workers: workers, logger: logger,
                                          budget: ProcessBudget(limit: ProcessBudget.defaultLimit), proving: true)
        let report = (["\(manifestPath): OK, \(HostSession.count(manifest.keys.count, "key"))"] + registry.summary.map { "  \($0)" }).joined(separator: "\n")
        registry.destroyAll()
        return report
    }

    /// Reads and checks the manifest at `path`. When it has problems, the plugins of the keys
    /// that could be read are loaded (and their instances made) all the same, so that every
    /// problem is reported at once, not a plugin's only once the fields around it are fixed.
    /// - Parameter logger: where those plugins' own log lines go (none, by default).
    static func loadManifest(_ path: String, logger: BatchmanLogger = .silent) throws(HostError) -> Manifest {
        let (manifest, error) = Manifest.loadReportingProblems(path: path)
        guard let error else { return manifest! }
        var problems = [error.description]
        if let manifest, !manifest.keys.isEmpty {
            let control = WorkerPool(name: "batchman-control", threads: 1)
            let workers = WorkerPool(name: "batchman-worker", threads: 1)
            defer {
                control.stop()
                workers.stop()
            }
            do throws(HostError) {
                try PluginRegistry(manifest: manifest, control: control, workers: workers, logger: logger,
                                   budget: ProcessBudget(limit: ProcessBudget.defaultLimit), proving: true).destroyAll()
            } catch {
                problems.append(error.message)
            }
        }
        throw HostError(.configuration, problems.joined(separator: "\n"))
    }

    /// Prepares the process: fills closed standard descriptors, installs the exit guard, and
    /// starts taking signals. Call first thing in `main`, before any thread exists.
    public static func prepareProcess() {
        StandardDescriptors.fillClosed()
        ProcessExitGuard.install()
        SignalWatcher.shared.start()
    }
}
