import Batchman
import FoundationEssentials
import Glibc
import Synchronization

/// The `batchman` host: manifest, plugins, NDJSON in, NDJSON out.
public enum Host {
    /// Runs the host until end of input or a signal, then drains every accepted job.
    ///
    /// Call ``SignalWatcher/blockSignals()`` (``prepareProcess()``) first, before any thread
    /// exists. Diagnostics go to `logger` (standard error), results to the output.
    /// - Throws: ``HostError``; nothing accepted is lost when it is thrown after start-up.
    public static func run(_ options: RunOptions, logger: BatchmanLogger = .standardError) async throws(HostError) {
        let manifest = try loadManifest(options.manifestPath)
        let input = try openInput(options.inputPath)
        let output = try openOutput(options.outputPath)
        let control = WorkerPool(name: "batchman-control", threads: 1)
        let workers = WorkerPool(name: "batchman-worker", threads: options.workers)
        defer {
            control.stop()
            workers.stop()
        }
        let registry = try PluginRegistry(manifest: manifest, control: control, workers: workers, logger: logger)
        let batchman: Batchman<JobBytes, JobBytes, ContinuousClock>
        do {
            batchman = try Batchman(config: manifest.batchmanConfig(), processors: registry.processorFactories, logger: logger)
        } catch {
            throw HostError(.configuration, "\(manifest.path): \(error)")
        }
        let writer = ResultWriter(fileDescriptor: output)
        let reader = InputReader(fileDescriptor: input, maxLineBytes: options.maxLineBytes)
        let invalidLines = LineCounter()
        func reportStatistics() {
            let statistics = batchman.statistics()
            logger.log(.info, StatsReporter.summary(statistics, invalidLines: invalidLines.count))
            if options.statsPerKey { for line in StatsReporter.perKey(statistics) { logger.log(.info, line) } }
        }
        let periodicStatistics = options.statsInterval.map { seconds in
            Task.detached {
                while (try? await Task.sleep(for: .seconds(seconds))) != nil { reportStatistics() }
            }
        }
        SignalWatcher.start { signal in
            logger.log(.info, "received \(SignalWatcher.signalName(signal)): reading no more input, draining accepted jobs (a second signal exits at once)")
            reader.stop()
        }

        let (end, lastLine) = await readAll(from: reader, into: batchman, writer: writer, invalidLines: invalidLines)
        switch end {
        case .stopped: logger.log(.info, "stopped reading after line \(lastLine)")
        case .readError(let code): logger.log(.error, "reading input failed after line \(lastLine): \(String(cString: strerror(code)))")
        case .endOfInput: break
        }
        await batchman.shutdown()
        periodicStatistics?.cancel()
        reportStatistics()
        let writeError = await writer.finish()
        registry.destroyAll()
        if options.inputPath != nil { close(input) }
        if options.outputPath != nil { close(output) }
        if let writeError {
            throw HostError(.runtime, "writing results failed: \(String(cString: strerror(writeError))); results after that point were lost")
        }
        if case .readError = end { throw HostError(.runtime, "input could not be read to its end") }
    }

    /// Loads every plugin and creates every instance, then releases them.
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
        let registry = try PluginRegistry(manifest: manifest, control: control, workers: workers, logger: logger)
        let report = (["\(manifestPath): OK, \(manifest.keys.count) keys"] + registry.summary.map { "  \($0)" }).joined(separator: "\n")
        registry.destroyAll()
        return report
    }

    private static func loadManifest(_ path: String) throws(HostError) -> Manifest {
        do {
            return try Manifest.load(path: path)
        } catch {
            throw HostError(.configuration, error.description)
        }
    }

    /// Blocks SIGINT and SIGTERM for every thread (they are taken by a watcher thread instead)
    /// and ignores SIGPIPE. Call first thing in `main`.
    public static func prepareProcess() {
        SignalWatcher.blockSignals()
    }

    /// Reads input on a dedicated thread, submitting each job; returns how reading ended and
    /// the number of the last line read.
    private static func readAll(
        from reader: InputReader, into batchman: Batchman<JobBytes, JobBytes, ContinuousClock>, writer: ResultWriter,
        invalidLines: LineCounter
    ) async -> (InputReader.End, Int) {
        await withCheckedContinuation { continuation in
            DedicatedThread.start(name: "batchman-input") {
                var lastLine = 0
                let end = reader.run { event in
                    switch event {
                    case .line(let number, let bytes):
                        lastLine = number
                        submit(bytes, line: number, to: batchman, writer: writer, invalidLines: invalidLines)
                    case .tooLong(let number, let length):
                        lastLine = number
                        invalidLines.add()
                        writer.append {
                            ResultEncoder.appendInvalidInput(line: number, key: nil, id: nil, message: "line is \(length) bytes, longer than --max-line-bytes", at: Date(), to: &$0)
                        }
                    case .cutShort(let number):
                        invalidLines.add()
                        writer.append {
                            ResultEncoder.appendInvalidInput(line: number, key: nil, id: nil, message: "input stopped in the middle of this line; it was not read whole", at: Date(), to: &$0)
                        }
                    }
                }
                continuation.resume(returning: (end, lastLine))
            }
        }
    }

    private static func submit(
        _ line: ArraySlice<UInt8>, line number: Int, to batchman: Batchman<JobBytes, JobBytes, ContinuousClock>, writer: ResultWriter,
        invalidLines: LineCounter
    ) {
        let parsed = line.withUnsafeBufferPointer { JobLine.parse($0) }
        switch parsed {
        case .blank:
            return
        case .invalid(let message, let key, let id):
            invalidLines.add()
            writer.append { ResultEncoder.appendInvalidInput(line: number, key: key, id: id, message: message, at: Date(), to: &$0) }
        case .job(let key, let id, let payload):
            let start = line.startIndex
            let bytes = line[(start + payload.lowerBound)..<(start + payload.upperBound)]
            batchman.submit(id: id, key: key, payload: bytes) { result in
                writer.append { ResultEncoder.append(result, to: &$0) }
            }
        }
    }

    private static func openInput(_ path: String?) throws(HostError) -> Int32 {
        guard let path else { return STDIN_FILENO }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw HostError(.usage, "--input \(path): \(String(cString: strerror(errno)))") }
        return descriptor
    }

    private static func openOutput(_ path: String?) throws(HostError) -> Int32 {
        guard let path else { return STDOUT_FILENO }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw HostError(.usage, "--output \(path): \(String(cString: strerror(errno)))") }
        return descriptor
    }
}

/// Counts input lines that were not jobs, for the statistics line.
final class LineCounter: Sendable {
    private let value = Atomic<Int>(0)
    var count: Int { value.load(ordering: .relaxed) }
    func add() { value.add(1, ordering: .relaxed) }
}
