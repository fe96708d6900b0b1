import Batchman
import FoundationEssentials
import Glibc

/// One `batchman run`: owns the descriptors, thread pools, generations of plugin instances and
/// cores, reader and writer, and releases them on one path, ``close()``, whatever step failed.
final class HostSession {
    typealias Core = Batchman<JobBytes, JobBytes, ContinuousClock>

    private let options: RunOptions
    private let logger: BatchmanLogger
    private let manifest: Manifest
    private let control = WorkerPool(name: "batchman-control", threads: 1)
    /// `--max-processes`: worker processes alive at once, over every configuration.
    private let budget: ProcessBudget
    private let workers: WorkerPool
    private let invalidLines = LineCounter()
    /// `--max-pending-bytes`: accepted jobs without a result, bounded.
    private let pending: PendingBytes
    // Opened by open(), in this order; close() releases whichever were.
    private var input: Int32?
    private var output: Int32?
    /// The output is a descriptor of the session's own (a file, or standard output moved aside).
    private var ownsOutput = false
    /// Descriptor 1 is a pipe whose lines are logged, and `output` is the real standard output.
    private var movedStandardOutput = false
    private var generations: Generations?
    /// `--spool DIR`: the write-ahead log of accepted lines, and what opening it found.
    private var spool: Spool?
    private var recovery: Spool.Recovery?
    /// `--listen`: bound at open(), closed when reading ends (the input loop) or at close().
    private var listeners: [Listener] = []
    /// Clients connected, and results nobody could receive.
    private let counters = ServiceCounters()
    /// The phase operators see (`/health`, `/ready`, systemd), and `--http`'s server.
    private let status: HostStatus
    private let endpoints: OperatorEndpoints
    private var http: HTTPServer?
    private let progress: ProgressReporter?
    /// `--nats`: the connection, the partitions owned, the results publisher.
    private var scaleOut: ScaleOut?

    init(options: RunOptions, logger: BatchmanLogger, progress: ProgressReporter? = nil) throws(HostError) {
        self.options = options
        self.logger = logger
        self.progress = progress
        let environment = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"].reduce(into: [String: String]()) { found, name in
            if let value = getenv(name) { found[name] = String(cString: value) }
        }
        self.status = HostStatus(notifier: SystemdNotifier.fromEnvironment(environment, logger: logger))
        self.endpoints = OperatorEndpoints(status: status)
        self.manifest = try Host.loadManifest(options.manifestPath)
        self.workers = WorkerPool(name: "batchman-worker", threads: options.workers)
        self.pending = PendingBytes(limit: options.maxPendingBytes)
        let descriptors = ProcessBudget.descriptorLimit()
        let processes = ProcessBudget.limit(asked: options.maxProcesses, descriptorLimit: descriptors)
        let manifest = self.manifest
        if processes < options.maxProcesses, manifest.keys.contains(where: { manifest.placement(forKey: $0.name).isolation == .process }) {
            logger.log(.info, "--max-processes \(options.maxProcesses) lowered to \(processes): the limit on open files (ulimit -n \(descriptors)) "
                       + "leaves room for that many worker processes; raise it with ulimit -n")
        }
        self.budget = ProcessBudget(limit: processes)
        // A client is a descriptor: past the limit on open files, accepting fails, and so does
        // whatever else needs one (a plugin's file, the runtime's own). 64 stay the host's.
        self.maxConnections = min(options.maxConnections, max(1, descriptors - 64))
        if maxConnections < options.maxConnections, !options.listen.isEmpty {
            logger.log(.info, "--max-connections \(options.maxConnections) lowered to \(maxConnections): the limit on open files (ulimit -n \(descriptors)) "
                       + "leaves room for that many clients; raise it with ulimit -n")
        }
    }

    /// `--max-connections`, within what the limit on open files allows.
    private let maxConnections: Int

    /// Opens input, output and `--listen` sockets, and loads every plugin; instances are made as
    /// jobs need them.
    func open() throws(HostError) {
        // With --listen, standard input is read only when --input - asks for it.
        if options.nats == nil, options.listen.isEmpty || options.inputPath != nil { input = try openInput() }
        output = try openOutput()
        try openSpool()
        for address in options.listen { listeners.append(try Listener.open(address, logger: logger)) }
        if let nats = options.nats { scaleOut = try ScaleOut(options: nats, logger: logger) }
        if let address = options.http {
            let endpoints = endpoints
            let server = try HTTPServer(address: address) { endpoints.respond(to: $0) }
            http = server
            logger.log(.info, "http on \(HTTPServer.hostPort(server.address)): /metrics, /health, /ready")
        }
        if output == STDOUT_FILENO, let results = LineForwarder.protectStandardOutput(logger: logger) {
            output = results
            ownsOutput = true
            movedStandardOutput = true
        }
        let first = try HostGeneration(number: 1, manifest: manifest, after: nil, batchIds: BatchIdGenerator(), control: control,
                                       workers: workers, budget: budget, proving: false, logger: logger)
        generations = Generations(first: first, logger: logger)
    }

    /// Reads every job (the stream's, and every client's until a stop signal), drains, and
    /// writes every result.
    /// - Throws: ``HostError`` (`.runtime`) if input or output failed; nothing accepted is lost
    ///   unless output failed, and then every accepted job is failed and counted.
    func run() async throws(HostError) {
        guard let generations, let output else { preconditionFailure("open() first") }
        let spool = spool
        let pending = pending
        let counters = counters
        let loopBox = LoopBox()
        let writer = ResultWriter(fileDescriptor: output, maxBufferedBytes: options.maxOutputBytes,
                                  onWritten: { spool?.markDone($0) }) { [logger] failure in
            logger.log(.error, "writing results failed: \(Errno(rawValue: failure)); reading no more input and failing every accepted job")
            loopBox.loop?.stop()
            spool?.interrupt()
            pending.close()
            // At once, not after reading stops: a reader blocked on a full key (a hung plugin)
            // is released by the jobs failing.
            Task { for generation in generations.live { await generation.core.abandon(Self.unanswered(failure)) } }
        }
        let reloads = ReloadCoordinator(manifestPath: options.manifestPath, generations: generations, control: control,
                                        workers: workers, budget: budget, logger: logger, status: status) { loopBox.loop?.wake() }
        let status = status
        let listening = !listeners.isEmpty
        HostMetrics.shared.resolveEntries { key in generations.current.manifest.entryName(forKey: key) }
        let invalidLines = invalidLines
        endpoints.serveMetrics {
            let (statistics, _, _) = generations.statistics()
            let reloadResults = generations.reloadResults
            return PrometheusExposition.render(PrometheusExposition.Snapshot(
                perKey: statistics.perKey, invalidLines: invalidLines.count, isolation: generations.current.registry.isolationStatistics,
                reloadsSucceeded: reloadResults.succeeded, reloadsFailed: reloadResults.failed, outputPauses: writer.pauses,
                spoolBytes: spool?.bytes, connections: listening ? counters.connections : nil, orphaned: counters.orphans,
                histograms: HostMetrics.shared.all, entryName: HostMetrics.shared.entryName(forKey:)))
        }
        let scaleOut = scaleOut
        let reportStatistics = { @Sendable [logger, invalidLines, status] (perKey: Bool) in
            let (statistics, reloadCount, lastReload) = generations.statistics()
            let isolation = generations.current.registry.isolationStatistics
            // Every configuration still alive holds instances: a replaced one until it drains.
            let counts = generations.live.flatMap(\.registry.counts)
            let service = listening || counters.orphans > 0 ? StatsReporter.Service(connections: counters.connections, orphaned: counters.orphans) : nil
            let summary = StatsReporter.summary(statistics, invalidLines: invalidLines.count, outputPauses: writer.pauses,
                                                isolation: isolation, reloads: reloadCount, lastReload: lastReload, instances: counts,
                                                service: service)
            logger.log(.info, summary)
            status.report(summary)
            if let scaleOut { logger.log(.info, scaleOut.summary) }
            if perKey {
                for line in StatsReporter.perKey(statistics, isolation: isolation) { logger.log(.info, line) }
                for line in StatsReporter.perEntry(generations.current.registry.counts) { logger.log(.info, line) }
            }
        }
        let statsPerKey = options.statsPerKey
        let periodicStatistics = options.statsInterval.map { seconds in
            Task.detached {
                while (try? await Task.sleep(for: .seconds(seconds))) != nil { reportStatistics(statsPerKey) }
            }
        }
        let watcher = options.watch ? ConfigurationWatcher(logger: logger, files: {
            let current = generations.current
            return [current.manifest.path] + current.registry.pluginFiles.values
        }, reload: { reloads.request($0) }) : nil
        let intake = JobIntake(spool: spool, pending: pending, invalidLines: invalidLines, logger: logger)
        let stream = input.map { StreamSource(reader: InputReader(fileDescriptor: $0, maxLineBytes: options.maxLineBytes),
                                              destination: OutputSink(writer: writer, pending: pending), writer: writer,
                                              isResumable: isFileInput, maxOutputBytes: options.maxOutputBytes) }
        let loop = InputLoop(configuration: InputLoop.Configuration(maxConnections: maxConnections, maxOutputBytes: options.maxOutputBytes),
                             stream: stream, listeners: listeners, maxLineBytes: options.maxLineBytes, intake: intake, generations: generations,
                             reloads: reloads, pending: pending, spool: spool, counters: counters, logger: logger)
        loopBox.loop = loop
        let coordinator = scaleOut.map { scaleOut in
            scaleOut.attach(wake: { [weak loop] in loop?.wake() })
            let results = NATSResults(scaleOut: scaleOut, pending: pending) { key in
                generations.current.core.config.config(forKey: key).maxInFlight == 1
            }
            loop.add(NATSSource(scaleOut: scaleOut, results: results))
            return PartitionCoordinator(scaleOut: scaleOut)
        }
        SignalWatcher.shared.running(SignalWatcher.Responses(
            stop: { [logger] name in
                let what = listening ? "accepting no more clients and reading no more lines" : "reading no more input"
                logger.log(.info, "received \(name): \(what), draining accepted jobs (a second signal exits at once)")
                status.draining()
                loop.stop()
                spool?.interrupt()
                pending.close()
            },
            printStatistics: reportStatistics,
            reload: { reloads.request("received SIGHUP") }))
        if let recovery, !recovery.pending.isEmpty {
            logger.log(.info, "spool: replaying \(recovery.pending.count) accepted lines that had no result written (results say \"replayed\":true)")
            intake.replay(recovery.pending, output: OutputSink(writer: writer, pending: pending, replayed: true),
                          orphans: OrphanDestination(spool: spool, pending: pending, counters: counters), into: generations.current.core)
        }
        let keys = Self.count(manifest.keys.count, "key")
        status.ready(status: "reading jobs (\(keys) in \(manifest.path))")
        if stream != nil { logger.log(.info, "reading jobs from \(isFileInput ? options.inputPath! : "standard input") (\(keys) in \(manifest.path))") }
        for listener in listeners { logger.log(.info, "listening on \(listener.address) (\(keys) in \(manifest.path))") }
        if let scaleOut, let coordinator {
            let which = if case .list(let list) = scaleOut.options.partitions { "partitions \(list.map(String.init).joined(separator: ","))" }
                else { "a fair share of \(scaleOut.partitionCount) partitions" }
            logger.log(.info, "taking jobs from \(scaleOut.layout.jobStream) as \(scaleOut.name): \(which) (\(keys) in \(manifest.path))")
            coordinator.start()
        }

        if let stream, let progress, isFileInput {
            var file = stat()
            _ = fstat(stream.reader.fileDescriptor, &file)
            stream.reader.progress = progress.input
            progress.start(fileSize: UInt64(max(0, file.st_size)), resultsWritten: { writer.written })
        }
        let (end, lastLine) = await loop.run()
        status.draining()
        await progress?.stop()
        watcher?.stop()
        reloads.close()
        generations.close()?.registry.destroyAll()
        switch end {
        case .stopped:
            let what = stream != nil ? "stopped reading after line \(lastLine)" : scaleOut != nil ? "stopped fetching jobs from NATS" : "stopped serving clients"
            logger.log(.info, what)
        case .readError(let code) where !listening: logger.log(.error, "reading input failed after line \(lastLine): \(Errno(rawValue: code))")
        case .readError, .endOfInput: break
        }
        let current = generations.current
        if let failure = writer.failure {
            await current.core.abandon(Self.unanswered(failure))
        } else {
            await current.core.shutdown()
        }
        // Generations a reload replaced finish (or time out) on their own; wait for them.
        for generation in generations.live where generation !== current { await generation.drained.wait() }
        // Every accepted job has its result: clients still connected get theirs written.
        loop.finish(within: Self.clientGraceSeconds)
        await loop.closed.wait()
        periodicStatistics?.cancel()
        reportStatistics(statsPerKey)
        let writeError = await writer.finish()
        await http?.stop()
        http = nil
        status.stop()
        spool?.close()
        if let writeError {
            // Jobs the batchers held and failed; lines refused after output failed are not jobs.
            let unanswered = generations.statistics().0.perKey.values.reduce(0) { $0 + ($1.failed[.shutdownBatch] ?? 0) }
            throw HostError(.runtime, "writing results failed: \(Errno(rawValue: writeError)); "
                            + "stopped reading after line \(lastLine), and \(unanswered) accepted jobs were failed without an answer")
        }
        if case .readError = end { throw HostError(.runtime, "input could not be read to its end") }
        if let spoolError = intake.spoolFailure.error, let directory = options.spoolPath {
            throw HostError(.runtime, "--spool \(directory) could not be written (\(spoolError)); reading stopped after line \(lastLine), "
                            + "and every line accepted before was answered")
        }
    }

    /// Seconds clients still connected after the drain get to read their last results.
    static let clientGraceSeconds = 10

    /// The input loop, for the callbacks made before it (the writer's, the reload's) to reach it.
    private final class LoopBox: @unchecked Sendable {
        // @unchecked: set once, before any callback that reads it can run (the loop's sources
        // are read only once the loop runs).
        var loop: InputLoop?
    }

    /// Destroys the plugin instances and closes what this session opened; safe after any
    /// failed step.
    func close() {
        spool?.close()
        scaleOut?.close()
        http?.requestStop()
        status.stop()
        for listener in listeners { listener.close() }
        if let generations {
            for instance in generations.current.registry.destroyAll() {
                let what = instance.terminate() ? "killed its worker process" : "its instance is not destroyed (destroy never runs during a call)"
                logger.log(.warning, "key \"\(instance.key)\": plugin \"\(instance.pluginName)\" is still inside process_batch; \(what)")
            }
        }
        if let input, isFileInput { Glibc.close(input) }
        if let output, movedStandardOutput { LineForwarder.restoreStandardOutput(from: output) }
        if let output, ownsOutput { Glibc.close(output) }
        control.stop()
        workers.stop()
        // What plugins and workers wrote to their standard output is logged before we exit.
        LineForwarder.waitForAll()
    }

    /// "1 key", "3 keys".
    static func count(_ number: Int, _ noun: String, plural: String? = nil) -> String {
        "\(number) \(number == 1 ? noun : plural ?? noun + "s")"
    }

    private static func unanswered(_ failure: Int32) -> String {
        "results cannot be written (\(Errno(rawValue: failure))); the job was not answered"
    }

    /// Takes the spool (`--spool`), repairs what a crash left, says so, and moves a file input
    /// to where the spool says reading stopped.
    private func openSpool() throws(HostError) {
        guard let directory = options.spoolPath else { return }
        let (spool, recovery) = try Spool.open(directory: directory, policy: options.fsync, maxBytes: options.spoolMaxBytes,
                                               input: isFileInput ? input : nil, logger: logger)
        self.spool = spool
        self.recovery = recovery
        SupervisorBoard.shared?.setSpool(directory)
        for line in recovery.report { logger.log(.warning, "spool: \(line)") }
        if isFileInput, let input, recovery.inputOffset > 0 {
            guard lseek(input, off_t(recovery.inputOffset), SEEK_SET) >= 0 else {
                throw HostError(.runtime, "--input \(options.inputPath!): cannot resume at byte \(recovery.inputOffset), where the spool says "
                                + "reading stopped: \(Errno.current)")
            }
            logger.log(.info, "spool: resuming --input \(options.inputPath!) at byte \(recovery.inputOffset), after the lines it already holds")
        }
    }

    /// `--input FILE`, not standard input (`--input -`, or none).
    private var isFileInput: Bool { options.inputPath.map { $0 != "-" } ?? false }

    private func openInput() throws(HostError) -> Int32 {
        guard let path = options.inputPath, path != "-" else {
            if StandardDescriptors.closedAtStart.contains(STDIN_FILENO) {
                logger.log(.warning, "standard input was closed: there are no jobs to read (give jobs on standard input or with --input FILE)")
            }
            return STDIN_FILENO
        }
        switch Syscall.open(path, O_RDONLY) {
        case .success(let descriptor): return descriptor
        case .failure(let error): throw HostError(.usage, "--input \(path): \(error)")
        }
    }

    private func openOutput() throws(HostError) -> Int32 {
        guard let path = options.outputPath else {
            guard !StandardDescriptors.closedAtStart.contains(STDOUT_FILENO) else {
                throw HostError(.runtime, "standard output is closed, so results would be lost; give the host an output (a pipe or a file) or use --output FILE")
            }
            return STDOUT_FILENO
        }
        switch Syscall.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644) {
        case .success(let descriptor):
            ownsOutput = true
            return descriptor
        case .failure(let error): throw HostError(.usage, "--output \(path): \(error)")
        }
    }
}
