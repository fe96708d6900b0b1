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
    private let workers: WorkerPool
    private let invalidLines = LineCounter()
    // Opened by open(), in this order; close() releases whichever were.
    private var input: Int32?
    private var output: Int32?
    /// The output is a descriptor of the session's own (a file, or standard output moved aside).
    private var ownsOutput = false
    /// Descriptor 1 is a pipe whose lines are logged, and `output` is the real standard output.
    private var movedStandardOutput = false
    private var generations: Generations?

    init(options: RunOptions, logger: BatchmanLogger) throws(HostError) {
        self.options = options
        self.logger = logger
        self.manifest = try Host.loadManifest(options.manifestPath)
        self.workers = WorkerPool(name: "batchman-worker", threads: options.workers)
    }

    /// Opens input and output, loads every plugin and creates every named key's instance.
    func open() throws(HostError) {
        input = try openInput()
        output = try openOutput()
        if output == STDOUT_FILENO, let results = LineForwarder.protectStandardOutput(logger: logger) {
            output = results
            ownsOutput = true
            movedStandardOutput = true
        }
        let first = try HostGeneration(number: 1, manifest: manifest, after: nil, batchIds: BatchIdGenerator(), control: control,
                                       workers: workers, logger: logger)
        generations = Generations(first: first, logger: logger)
    }

    /// Reads every job, drains, and writes every result.
    /// - Throws: ``HostError`` (`.runtime`) if input or output failed; nothing accepted is lost
    ///   unless output failed, and then every accepted job is failed and counted.
    func run() async throws(HostError) {
        guard let generations, let input, let output else { preconditionFailure("open() first") }
        let reader = InputReader(fileDescriptor: input, maxLineBytes: options.maxLineBytes)
        let writer = ResultWriter(fileDescriptor: output, maxBufferedBytes: options.maxOutputBytes) { [logger] failure in
            logger.log(.error, "writing results failed: \(String(cString: strerror(failure))); reading no more input and failing every accepted job")
            reader.stop()
            // At once, not after reading stops: a reader blocked on a full key (a hung plugin)
            // is released by the jobs failing.
            Task { for generation in generations.live { await generation.core.abandon(Self.unanswered(failure)) } }
        }
        let reloads = ReloadCoordinator(manifestPath: options.manifestPath, generations: generations, control: control,
                                        workers: workers, logger: logger) { reader.wake() }
        let reportStatistics = { @Sendable [logger, invalidLines] (perKey: Bool) in
            let (statistics, reloadCount, lastReload) = generations.statistics()
            let isolation = generations.current.registry.isolationStatistics
            logger.log(.info, StatsReporter.summary(statistics, invalidLines: invalidLines.count, outputPauses: writer.pauses,
                                                    isolation: isolation, reloads: reloadCount, lastReload: lastReload))
            if perKey { for line in StatsReporter.perKey(statistics, isolation: isolation) { logger.log(.info, line) } }
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
        SignalWatcher.shared.running(SignalWatcher.Responses(
            stop: { [logger] name in
                logger.log(.info, "received \(name): reading no more input, draining accepted jobs (a second signal exits at once)")
                reader.stop()
            },
            printStatistics: reportStatistics,
            reload: { reloads.request("received SIGHUP") }))
        logger.log(.info, "reading jobs from \(options.inputPath ?? "standard input") (\(manifest.keys.count) keys in \(manifest.path))")

        let (end, lastLine) = await readAll(from: reader, into: generations, reloads: reloads, writer: writer)
        watcher?.stop()
        reloads.close()
        generations.close()?.registry.destroyAll()
        switch end {
        case .stopped: logger.log(.info, "stopped reading after line \(lastLine)")
        case .readError(let code): logger.log(.error, "reading input failed after line \(lastLine): \(String(cString: strerror(code)))")
        case .endOfInput: break
        }
        let current = generations.current
        if let failure = writer.failure {
            await current.core.abandon(Self.unanswered(failure))
        } else {
            await current.core.shutdown()
        }
        // Generations a reload replaced finish (or time out) on their own; wait for them.
        for generation in generations.live where generation !== current { await generation.drained.wait() }
        periodicStatistics?.cancel()
        reportStatistics(statsPerKey)
        if let writeError = await writer.finish() {
            // Jobs the batchers held and failed; lines refused after output failed are not jobs.
            let unanswered = generations.statistics().0.perKey.values.reduce(0) { $0 + ($1.failed[.shutdownBatch] ?? 0) }
            throw HostError(.runtime, "writing results failed: \(String(cString: strerror(writeError))); "
                            + "stopped reading after line \(lastLine), and \(unanswered) accepted jobs were failed without an answer")
        }
        if case .readError = end { throw HostError(.runtime, "input could not be read to its end") }
    }

    /// Destroys the plugin instances and closes what this session opened; safe after any
    /// failed step.
    func close() {
        if let generations {
            for instance in generations.current.registry.destroyAll() {
                logger.log(.warning, "key \"\(instance.key)\": plugin \"\(instance.pluginName)\" is still inside process_batch; "
                           + "its instance is not destroyed (destroy never runs during a call)")
            }
        }
        if let input, options.inputPath != nil { Glibc.close(input) }
        if let output, movedStandardOutput { LineForwarder.restoreStandardOutput(from: output) }
        if let output, ownsOutput { Glibc.close(output) }
        control.stop()
        workers.stop()
        // What plugins and workers wrote to their standard output is logged before we exit.
        LineForwarder.waitForAll()
    }

    /// Reads input on a dedicated thread, submitting each job to the current generation (taking
    /// over a staged one between lines); returns how reading ended and the last line's number.
    private func readAll(
        from reader: InputReader, into generations: Generations, reloads: ReloadCoordinator, writer: ResultWriter
    ) async -> (InputReader.End, Int) {
        let invalidLines = invalidLines
        let logger = logger
        let maxOutputBytes = options.maxOutputBytes
        return await withCheckedContinuation { continuation in
            DedicatedThread.start(name: "batchman-input") {
                var lastLine = 0
                var generation = generations.current
                let sink = OutputSink(writer: writer)
                // The jobs of one read, submitted together: one lock per key per chunk. They share
                // the read's time as their submission time.
                var pending: [Job<JobBytes>] = []
                var readAt = Date()
                func submitPending() {
                    guard !pending.isEmpty else { return }
                    generation.core.submit(contentsOf: pending, to: sink)
                    pending.removeAll(keepingCapacity: true)
                }
                func takeOverStaged() {
                    guard generations.isStaged else { return }
                    submitPending()  // what was read before the switch belongs to the old configuration
                    generation = generations.switchIfStaged(describe: ReloadReport.describe)
                    reloads.didSwitch()
                }
                func waitForOutput() {
                    writer.waitForRoom { pause in
                        guard pause == 1 else { return }
                        logger.log(.info, "output is not being read: \(maxOutputBytes) bytes of results are waiting; "
                                   + "reading input paused until the consumer catches up (counted as outputPauses in the statistics)")
                    }
                }
                let end = reader.run(onWake: takeOverStaged, onChunkEnd: submitPending) { event in
                    takeOverStaged()
                    if pending.isEmpty {
                        waitForOutput()
                        readAt = Date()
                    }
                    switch event {
                    case .line(let number, let bytes):
                        lastLine = number
                        Self.parse(bytes, line: number, at: readAt, into: &pending, writer: writer, invalidLines: invalidLines)
                    case .tooLong(let number, let length):
                        lastLine = number
                        Self.reportInvalid(line: number, "line is \(length) bytes, longer than --max-line-bytes", writer: writer, invalidLines: invalidLines)
                    case .cutShort(let number):
                        Self.reportInvalid(line: number, "input stopped in the middle of this line; it was not read whole", writer: writer, invalidLines: invalidLines)
                    case .putBack(let number, let offset):
                        logger.log(.info, "line \(number) was only partly read: input wound back to its start (byte \(offset)) for the next run")
                    }
                }
                submitPending()
                continuation.resume(returning: (end, lastLine))
            }
        }
    }

    private static func unanswered(_ failure: Int32) -> String {
        "results cannot be written (\(String(cString: strerror(failure)))); the job was not answered"
    }

    private static func reportInvalid(line number: Int, _ message: String, writer: ResultWriter, invalidLines: LineCounter) {
        invalidLines.add()
        var line: [UInt8] = []
        ResultEncoder.appendInvalidInput(line: number, key: nil, id: nil, message: message, at: Date(), to: &line)
        writer.append(line)
    }

    /// Parses one input line: a job joins `pending`, anything else is answered at once.
    private static func parse(
        _ line: ArraySlice<UInt8>, line number: Int, at readAt: Date, into pending: inout [Job<JobBytes>],
        writer: ResultWriter, invalidLines: LineCounter
    ) {
        let parsed = line.withUnsafeBufferPointer { JobLine.parse($0) }
        switch parsed {
        case .blank:
            return
        case .invalid(let message, let key, let id):
            invalidLines.add()
            var result: [UInt8] = []
            ResultEncoder.appendInvalidInput(line: number, key: key, id: id, message: message, at: Date(), to: &result)
            writer.append(result)
        case .job(let key, let id, let payload):
            let start = line.startIndex
            pending.append(Job(id: id, key: key, payload: line[(start + payload.lowerBound)..<(start + payload.upperBound)], submittedAt: readAt))
        }
    }

    private func openInput() throws(HostError) -> Int32 {
        guard let path = options.inputPath else {
            if StandardDescriptors.closedAtStart.contains(STDIN_FILENO) {
                logger.log(.warning, "standard input was closed: there are no jobs to read (give jobs on standard input or with --input FILE)")
            }
            return STDIN_FILENO
        }
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw HostError(.usage, "--input \(path): \(String(cString: strerror(errno)))") }
        return descriptor
    }

    private func openOutput() throws(HostError) -> Int32 {
        guard let path = options.outputPath else {
            guard !StandardDescriptors.closedAtStart.contains(STDOUT_FILENO) else {
                throw HostError(.runtime, "standard output is closed, so results would be lost; give the host an output (a pipe or a file) or use --output FILE")
            }
            return STDOUT_FILENO
        }
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw HostError(.usage, "--output \(path): \(String(cString: strerror(errno)))") }
        ownsOutput = true
        return descriptor
    }
}
