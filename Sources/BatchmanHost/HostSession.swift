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
    private var spoolTracker: SpoolTracker?
    /// A spool write that failed: the run then ends with status 70.
    private let spoolFailure = FirstFailure()

    init(options: RunOptions, logger: BatchmanLogger) throws(HostError) {
        self.options = options
        self.logger = logger
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
    }

    /// Opens input and output and loads every plugin; instances are made as jobs need them.
    func open() throws(HostError) {
        input = try openInput()
        output = try openOutput()
        try openSpool()
        if output == STDOUT_FILENO, let results = LineForwarder.protectStandardOutput(logger: logger) {
            output = results
            ownsOutput = true
            movedStandardOutput = true
        }
        let first = try HostGeneration(number: 1, manifest: manifest, after: nil, batchIds: BatchIdGenerator(), control: control,
                                       workers: workers, budget: budget, proving: false, logger: logger)
        generations = Generations(first: first, logger: logger)
    }

    /// Reads every job, drains, and writes every result.
    /// - Throws: ``HostError`` (`.runtime`) if input or output failed; nothing accepted is lost
    ///   unless output failed, and then every accepted job is failed and counted.
    func run() async throws(HostError) {
        guard let generations, let input, let output else { preconditionFailure("open() first") }
        let reader = InputReader(fileDescriptor: input, maxLineBytes: options.maxLineBytes)
        let spool = spool
        let pending = pending
        let writer = ResultWriter(fileDescriptor: output, maxBufferedBytes: options.maxOutputBytes,
                                  onWritten: { spool?.markDone($0) }) { [logger] failure in
            logger.log(.error, "writing results failed: \(Errno(rawValue: failure)); reading no more input and failing every accepted job")
            reader.stop()
            spool?.interrupt()
            pending.close()
            // At once, not after reading stops: a reader blocked on a full key (a hung plugin)
            // is released by the jobs failing.
            Task { for generation in generations.live { await generation.core.abandon(Self.unanswered(failure)) } }
        }
        let reloads = ReloadCoordinator(manifestPath: options.manifestPath, generations: generations, control: control,
                                        workers: workers, budget: budget, logger: logger) { reader.wake() }
        let reportStatistics = { @Sendable [logger, invalidLines] (perKey: Bool) in
            let (statistics, reloadCount, lastReload) = generations.statistics()
            let isolation = generations.current.registry.isolationStatistics
            // Every configuration still alive holds instances: a replaced one until it drains.
            let counts = generations.live.flatMap(\.registry.counts)
            logger.log(.info, StatsReporter.summary(statistics, invalidLines: invalidLines.count, outputPauses: writer.pauses,
                                                    isolation: isolation, reloads: reloadCount, lastReload: lastReload, instances: counts))
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
        SignalWatcher.shared.running(SignalWatcher.Responses(
            stop: { [logger] name in
                logger.log(.info, "received \(name): reading no more input, draining accepted jobs (a second signal exits at once)")
                reader.stop()
                spool?.interrupt()
                pending.close()
            },
            printStatistics: reportStatistics,
            reload: { reloads.request("received SIGHUP") }))
        if let recovery, !recovery.pending.isEmpty {
            logger.log(.info, "spool: replaying \(recovery.pending.count) accepted lines that had no result written (results say \"replayed\":true)")
            replay(recovery.pending, into: generations.current, writer: writer)
        }
        logger.log(.info, "reading jobs from \(options.inputPath ?? "standard input") (\(Self.count(manifest.keys.count, "key")) in \(manifest.path))")

        let (end, lastLine) = await readAll(from: reader, into: generations, reloads: reloads, writer: writer)
        watcher?.stop()
        reloads.close()
        generations.close()?.registry.destroyAll()
        switch end {
        case .stopped: logger.log(.info, "stopped reading after line \(lastLine)")
        case .readError(let code): logger.log(.error, "reading input failed after line \(lastLine): \(Errno(rawValue: code))")
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
        let writeError = await writer.finish()
        spool?.close()
        if let writeError {
            // Jobs the batchers held and failed; lines refused after output failed are not jobs.
            let unanswered = generations.statistics().0.perKey.values.reduce(0) { $0 + ($1.failed[.shutdownBatch] ?? 0) }
            throw HostError(.runtime, "writing results failed: \(Errno(rawValue: writeError)); "
                            + "stopped reading after line \(lastLine), and \(unanswered) accepted jobs were failed without an answer")
        }
        if case .readError = end { throw HostError(.runtime, "input could not be read to its end") }
        if let spoolError = spoolFailure.error, let directory = options.spoolPath {
            throw HostError(.runtime, "--spool \(directory) could not be written (\(spoolError)); reading stopped after line \(lastLine), "
                            + "and every line accepted before was answered")
        }
    }

    /// Destroys the plugin instances and closes what this session opened; safe after any
    /// failed step.
    func close() {
        spool?.close()
        if let generations {
            for instance in generations.current.registry.destroyAll() {
                let what = instance.terminate() ? "killed its worker process" : "its instance is not destroyed (destroy never runs during a call)"
                logger.log(.warning, "key \"\(instance.key)\": plugin \"\(instance.pluginName)\" is still inside process_batch; \(what)")
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
    /// With a spool, each read's lines are appended to it before their jobs reach the batchers.
    private func readAll(
        from reader: InputReader, into generations: Generations, reloads: ReloadCoordinator, writer: ResultWriter
    ) async -> (InputReader.End, Int) {
        let invalidLines = invalidLines
        let logger = logger
        let maxOutputBytes = options.maxOutputBytes
        let pending = pending
        let spool = spool
        let tracker = spoolTracker
        let resumable = options.inputPath != nil
        let spoolFailure = self.spoolFailure
        return await withCheckedContinuation { continuation in
            DedicatedThread.start(name: "batchman-input") {
                var lastLine = 0
                var generation = generations.current
                let sink = OutputSink(writer: writer, tracker: tracker, pending: pending)
                // The lines of one read, handled together: spooled in one write, their jobs
                // submitted with one lock per key. They share the read's time as their
                // submission time.
                var lines: [ReadLine] = []
                var readAt = Date()
                func handlePending() {
                    guard !lines.isEmpty else { return }
                    var sequences: [UInt64]?
                    if let spool {
                        switch Self.spool(lines, in: spool, resumable: resumable, logger: logger) {
                        case .spooled(let spooled):
                            sequences = spooled
                        case let unspooled:
                            // Not in the spool: from a file they are read again by the next run
                            // (the spool resumes before them); from a pipe they are all there is.
                            if case .failed(let error) = unspooled { spoolFailure.record(error) }
                            reader.stop()
                            if resumable {
                                logger.log(.warning, "spool: \(lines.count) lines read after line \(lines[0].number - 1) are not spooled; they stay in "
                                           + "--input for the next run, which resumes before them")
                                lines.removeAll(keepingCapacity: true)
                                return
                            }
                            logger.log(.warning, "spool: \(lines.count) lines read from standard input could not be spooled; they are processed without it")
                        }
                    }
                    let jobs = Self.jobs(of: lines, sequences: sequences, submittedAt: readAt, replayed: false, spool: spool, tracker: tracker,
                                         writer: writer, invalidLines: invalidLines)
                    lines.removeAll(keepingCapacity: true)
                    guard !jobs.isEmpty else { return }
                    pending.accepted(jobs.reduce(0) { $0 + PendingBytes.charge(key: $1.key, id: $1.id, payload: $1.payload) })
                    generation.core.submit(contentsOf: jobs, to: sink)
                }
                func takeOverStaged() {
                    guard generations.isStaged else { return }
                    handlePending()  // what was read before the switch belongs to the old configuration
                    generation = generations.switchIfStaged(describe: ReloadReport.describe)
                    reloads.didSwitch()
                }
                func waitForRoom() {
                    pending.waitForRoom {
                        logger.log(.info, "reading input paused: accepted jobs without a result take --max-pending-bytes (\(pending.limit)); "
                                   + "reading resumes as their results are written")
                    }
                    waitForOutput()
                }
                func waitForOutput() {
                    writer.waitForRoom { pause in
                        guard pause == 1 else { return }
                        logger.log(.info, "output is not being read: \(maxOutputBytes) bytes of results are waiting; "
                                   + "reading input paused until the consumer catches up (counted as outputPauses in the statistics)")
                    }
                }
                let end = reader.run(onWake: takeOverStaged, onChunkEnd: handlePending) { event in
                    takeOverStaged()
                    if lines.isEmpty {
                        waitForRoom()
                        readAt = Date()
                    }
                    switch event {
                    case .line(let number, let bytes, let end):
                        lastLine = number
                        let parsed = bytes.withUnsafeBufferPointer { JobLine.parse($0) }
                        if parsed != .blank { lines.append(ReadLine(bytes: bytes, number: number, end: end, parsed: parsed)) }
                    case .tooLong(let number, let length, let end):
                        lastLine = number
                        // Spooled as an empty record: the line's bytes were never kept.
                        lines.append(ReadLine(bytes: [], number: number, end: end, parsed: nil, tooLongBy: length))
                    case .cutShort(let number):
                        Self.reportInvalid(line: number, "input stopped in the middle of this line; it was not read whole", writer: writer, invalidLines: invalidLines)
                    case .putBack(let number, let offset):
                        logger.log(.info, "line \(number) was only partly read: input wound back to its start (byte \(offset)) for the next run")
                    }
                }
                handlePending()
                continuation.resume(returning: (end, lastLine))
            }
        }
    }

    /// Appends a read's lines to the spool, saying when reading pauses (the spool full, the
    /// disk full), resumes, or the spool cannot be written.
    private static func spool(_ lines: [ReadLine], in spool: Spool, resumable: Bool, logger: BatchmanLogger) -> Spool.AppendResult {
        let result = spool.append(lines.map { Spool.Line(bytes: $0.bytes, number: $0.number, inputEnd: resumable ? $0.end : 0) }, onPause: { why in
            switch why {
            case .full:
                logger.log(.info, "spool: \(spool.directory) holds --spool-max-bytes (\(spool.maxBytes)) of lines not yet answered; "
                           + "reading input paused until answered lines free room")
            case .diskFull:
                logger.log(.warning, "spool: \(spool.directory): the disk is full (\(Errno.noSpace)); reading input paused until answered lines free "
                           + "room or the disk has room again (nothing read is dropped)")
            }
        }, onResume: {
            logger.log(.info, "spool: \(spool.directory) has room again; reading input resumed")
        })
        if case .failed(let error) = result {
            logger.log(.error, "spool: \(spool.directory) cannot be written (\(error)); reading no more input")
        }
        return result
    }

    /// A line read and parsed, waiting for the end of its read (or read back from the spool).
    private struct ReadLine {
        let bytes: ArraySlice<UInt8>
        let number: Int
        let end: UInt64
        /// Nil for a line longer than --max-line-bytes, whose bytes were not kept.
        let parsed: JobLine?
        /// The too-long line's length, when known (a line replayed from the spool has lost it).
        var tooLongBy: Int?
    }

    /// Answers the lines that are not jobs at once (their results carry their spool sequences)
    /// and returns the jobs of the others, registered with `tracker` under their sequences
    /// before anything submits them: a refused job is answered at once.
    private static func jobs(
        of lines: [ReadLine], sequences: [UInt64]?, submittedAt time: Date, replayed: Bool, spool: Spool?, tracker: SpoolTracker?,
        writer: ResultWriter, invalidLines: LineCounter
    ) -> [Job<JobBytes>] {
        var jobs: [Job<JobBytes>] = []
        jobs.reserveCapacity(lines.count)
        var spooled: [(key: String, id: String, sequence: UInt64)] = []
        var blank: [UInt64] = []
        for (index, line) in lines.enumerated() {
            let sequence = sequences?[index]
            switch line.parsed {
            case .job(let key, let id, let payload)?:
                if let sequence { spooled.append((key, id, sequence)) }
                let start = line.bytes.startIndex
                jobs.append(Job(id: id, key: key, payload: line.bytes[(start + payload.lowerBound)..<(start + payload.upperBound)], submittedAt: time))
            case .invalid(let message, let key, let id)?:
                reportInvalid(line: line.number, message, key: key, id: id, sequence: sequence, replayed: replayed, writer: writer,
                              invalidLines: invalidLines)
            case nil:
                let message = line.tooLongBy.map { "line is \($0) bytes, longer than --max-line-bytes" } ?? "line was longer than --max-line-bytes"
                reportInvalid(line: line.number, message, sequence: sequence, replayed: replayed, writer: writer, invalidLines: invalidLines)
            case .blank?:
                if let sequence { blank.append(sequence) }  // never spooled; answered by nothing
            }
        }
        tracker?.register(spooled)
        spool?.markDone(blank)
        SupervisorBoard.shared?.accepted(jobs.count)
        return jobs
    }

    /// Replays the lines a previous run spooled and did not answer: before any new input, with
    /// `"replayed":true` on their results.
    private func replay(_ records: [SpoolRecord], into generation: HostGeneration, writer: ResultWriter) {
        guard let tracker = spoolTracker, !records.isEmpty else { return }
        let lines = records.map { record in
            let bytes = record.line[...]
            return ReadLine(bytes: bytes, number: Int(record.lineNumber), end: record.inputEnd,
                            parsed: bytes.isEmpty ? nil : bytes.withUnsafeBufferPointer { JobLine.parse($0) })
        }
        let jobs = Self.jobs(of: lines, sequences: records.map(\.sequence), submittedAt: Date(), replayed: true, spool: spool,
                             tracker: tracker, writer: writer, invalidLines: invalidLines)
        let sink = OutputSink(writer: writer, tracker: tracker, pending: pending, replayed: true)
        pending.accepted(jobs.reduce(0) { $0 + PendingBytes.charge(key: $1.key, id: $1.id, payload: $1.payload) })
        for start in stride(from: 0, to: jobs.count, by: 1000) {
            generation.core.submit(contentsOf: Array(jobs[start..<min(jobs.count, start + 1000)]), to: sink)
        }
    }

    /// "1 key", "3 keys".
    static func count(_ number: Int, _ noun: String, plural: String? = nil) -> String {
        "\(number) \(number == 1 ? noun : plural ?? noun + "s")"
    }

    private static func unanswered(_ failure: Int32) -> String {
        "results cannot be written (\(Errno(rawValue: failure))); the job was not answered"
    }

    private static func reportInvalid(
        line number: Int, _ message: String, key: String? = nil, id: String? = nil, sequence: UInt64? = nil, replayed: Bool = false,
        writer: ResultWriter, invalidLines: LineCounter
    ) {
        invalidLines.add()
        SupervisorBoard.shared?.accepted(1)
        var line: [UInt8] = []
        ResultEncoder.appendInvalidInput(line: number, key: key, id: id, message: message, at: Date(), replayed: replayed, to: &line)
        writer.append(line, count: 1, done: sequence.map { [$0] } ?? [])
    }

    /// Takes the spool (`--spool`), repairs what a crash left, says so, and moves a file input
    /// to where the spool says reading stopped.
    private func openSpool() throws(HostError) {
        guard let directory = options.spoolPath, let input else { return }
        let (spool, recovery) = try Spool.open(directory: directory, policy: options.fsync, maxBytes: options.spoolMaxBytes,
                                               input: options.inputPath != nil ? input : nil, logger: logger)
        self.spool = spool
        self.recovery = recovery
        SupervisorBoard.shared?.setSpool(directory)
        spoolTracker = SpoolTracker()
        for line in recovery.report { logger.log(.warning, "spool: \(line)") }
        if options.inputPath != nil, recovery.inputOffset > 0 {
            guard lseek(input, off_t(recovery.inputOffset), SEEK_SET) >= 0 else {
                throw HostError(.runtime, "--input \(options.inputPath!): cannot resume at byte \(recovery.inputOffset), where the spool says "
                                + "reading stopped: \(Errno.current)")
            }
            logger.log(.info, "spool: resuming --input \(options.inputPath!) at byte \(recovery.inputOffset), after the lines it already holds")
        }
    }

    private func openInput() throws(HostError) -> Int32 {
        guard let path = options.inputPath else {
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
