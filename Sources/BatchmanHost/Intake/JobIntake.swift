import Batchman
import FoundationEssentials

/// Turns the lines of one read into jobs, on the input thread: appends them to the spool,
/// answers those that are not jobs at once (on their origin's destination), and submits the
/// rest to the core with one lock per key. The same steps for standard input, a file, a
/// client's connection and a replay of the spool.
final class JobIntake {
    typealias Core = HostSession.Core

    private let spool: Spool?
    private let pending: PendingBytes
    private let invalidLines: LineCounter
    private let logger: BatchmanLogger
    /// A spool write that failed: the run then ends with status 70.
    let spoolFailure = FirstFailure()

    init(spool: Spool?, pending: PendingBytes, invalidLines: LineCounter, logger: BatchmanLogger) {
        self.spool = spool
        self.pending = pending
        self.invalidLines = invalidLines
        self.logger = logger
    }

    /// What taking a read's lines came to.
    enum Taken: Equatable {
        case taken
        /// The lines could not be spooled and reading must stop; from a file they stay there for
        /// the next run (which resumes before them).
        case stopReading
    }

    /// Spools `lines` and submits their jobs to `core`; the lines share `readAt` as their
    /// submission time. `lines` is emptied, its capacity kept. Without a spool, `sequences`
    /// (a stream's, one per line) go in the jobs' tags instead. `redelivered` (a stream's, one
    /// per line) marks jobs the stream delivered before.
    func take(
        _ lines: inout [ReadLine], from origin: LineOrigin, readAt: Date, into core: Core, sequences given: [UInt64]? = nil,
        redelivered: [Bool]? = nil
    ) -> Taken {
        guard !lines.isEmpty else { return .taken }
        defer { lines.removeAll(keepingCapacity: true) }
        var sequences = spool == nil ? given : nil
        var taken = Taken.taken
        if let spool {
            switch append(lines, to: spool, origin: origin) {
            case .spooled(let spooled):
                sequences = spooled
            case let unspooled:
                if case .failed(let error) = unspooled { spoolFailure.record(error) }
                taken = .stopReading
                if origin.isResumable {
                    logger.log(.warning, "spool: \(lines.count) lines read after line \(lines[0].number - 1) are not spooled; they stay in "
                               + "--input for the next run, which resumes before them")
                    return taken
                }
                logger.log(.warning, "spool: \(lines.count) lines read could not be spooled; they are processed without it")
            }
        }
        let (jobs, charge) = jobs(of: lines, sequences: sequences, redelivered: redelivered, submittedAt: readAt, origin: origin)
        guard !jobs.isEmpty else { return taken }
        pending.accepted(charge)
        core.submit(contentsOf: jobs, to: origin.destination.sink)
        return taken
    }

    /// Replays lines a previous run spooled and did not answer, before any new input: a file's
    /// or standard input's to `output` (`"replayed":true`), a client's to `orphans` (the client
    /// went with the old host; the jobs run, their results are counted as orphaned).
    func replay(_ records: [SpoolRecord], output: any ResultDestination, orphans: any ResultDestination, into core: Core) {
        let now = Date()
        for fromClient in [false, true] {
            let chosen = records.filter { SpoolRecord.isFromClient($0.lineNumber) == fromClient }
            guard !chosen.isEmpty else { continue }
            let origin = LineOrigin(destination: fromClient ? orphans : output, scope: 0, connection: nil, isResumable: false, isReplay: true)
            for start in stride(from: 0, to: chosen.count, by: 1000) {
                let part = chosen[start..<min(chosen.count, start + 1000)]
                let lines = part.map { record in
                    let bytes = record.line[...]
                    return ReadLine(bytes: bytes, number: Int(SpoolRecord.lineNumber(record.lineNumber)), end: record.inputEnd,
                                    parsed: bytes.isEmpty ? nil : bytes.withUnsafeBufferPointer { JobLine.parse($0) })
                }
                let (jobs, charge) = jobs(of: lines, sequences: part.map(\.sequence), submittedAt: now, origin: origin)
                pending.accepted(charge)
                core.submit(contentsOf: jobs, to: origin.destination.sink)
            }
        }
    }

    /// A line that is not a job, answered by the host: `invalid_input`, with its line number.
    func reportInvalid(line number: Int, _ message: String, key: String? = nil, id: String? = nil, sequence: UInt64? = nil, origin: LineOrigin) {
        invalidLines.add()
        SupervisorBoard.shared?.accepted(1)
        origin.connection?.accepted(1)
        var line: [UInt8] = []
        ResultEncoder.appendInvalidInput(line: number, key: key, id: id, message: message, at: Date(), replayed: origin.isReplay, to: &line)
        origin.destination.answer(line, count: 1, done: sequence.map { [$0] } ?? [])
    }

    /// Answers the lines that are not jobs at once and returns the jobs of the others, tagged
    /// with their origin's scope and their spool sequences; a replay's, and those `redelivered`
    /// says, are marked as delivered before (`bm_job.flags`' BM_JOB_REDELIVERED). Also returns
    /// their `--max-pending-bytes` charge.
    private func jobs(
        of lines: [ReadLine], sequences: [UInt64]?, redelivered: [Bool]? = nil, submittedAt time: Date, origin: LineOrigin
    ) -> (jobs: [Job<JobBytes>], charge: Int) {
        var jobs: [Job<JobBytes>] = []
        jobs.reserveCapacity(lines.count)
        var charge = 0
        var blank: [UInt64] = []
        // Lines are read in place, by index: a whole line taken out is copied through its value
        // witnesses, with a retain of its input chunk (see Array.encodedLines).
        for index in lines.indices {
            let sequence = sequences?[index]
            switch lines[index].parsed {
            case .job(let key, let id, let payload)?:
                let start = lines[index].bytes.startIndex
                charge += PendingBytes.charge(key: key, id: id, payloadBytes: payload.count)
                jobs.append(Job(id: id, key: key, payload: lines[index].bytes[(start + payload.lowerBound)..<(start + payload.upperBound)],
                                submittedAt: time,
                                tag: JobTag(scope: origin.scope, value: sequence ?? 0,
                                            redelivered: origin.isReplay || redelivered?[index] == true)))
            case .invalid(let message, let key, let id)?:
                reportInvalid(line: lines[index].number, message, key: key, id: id, sequence: sequence, origin: origin)
            case nil:
                let message = lines[index].tooLongBy.map { "line is \($0) bytes, longer than --max-line-bytes" } ?? "line was longer than --max-line-bytes"
                reportInvalid(line: lines[index].number, message, sequence: sequence, origin: origin)
            case .blank?:
                if let sequence { blank.append(sequence) }  // never spooled; answered by nothing
            }
        }
        if let spool {
            spool.markDone(blank)
        } else if !blank.isEmpty {
            origin.destination.answer([], count: 0, done: blank)  // a stream's blank message: answered by nothing
        }
        SupervisorBoard.shared?.accepted(jobs.count)
        origin.connection?.accepted(jobs.count)
        return (jobs, charge)
    }

    /// Appends a read's lines to the spool, saying when reading pauses (the spool full, the
    /// disk full), resumes, or the spool cannot be written.
    private func append(_ lines: [ReadLine], to spool: Spool, origin: LineOrigin) -> Spool.AppendResult {
        let fromClient = origin.connection != nil
        let records = lines.map {
            Spool.Line(bytes: $0.bytes, number: fromClient ? SpoolRecord.clientLineNumber($0.number) : $0.number,
                       inputEnd: origin.isResumable ? $0.end : 0)
        }
        let result = spool.append(records, onPause: { [logger] why in
            switch why {
            case .full:
                logger.log(.info, "spool: \(spool.directory) holds --spool-max-bytes (\(spool.maxBytes)) of lines not yet answered; "
                           + "reading input paused until answered lines free room")
            case .diskFull:
                logger.log(.warning, "spool: \(spool.directory): the disk is full (\(Errno.noSpace)); reading input paused until answered lines free "
                           + "room or the disk has room again (nothing read is dropped)")
            }
        }, onResume: { [logger] in
            logger.log(.info, "spool: \(spool.directory) has room again; reading input resumed")
        })
        if case .failed(let error) = result {
            logger.log(.error, "spool: \(spool.directory) cannot be written (\(error)); reading no more input")
        }
        return result
    }
}
