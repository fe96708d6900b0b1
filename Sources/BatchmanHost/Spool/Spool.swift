import Batchman
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// When the spool's writes reach the disk (`--fsync`).
public enum SpoolSyncPolicy: String, Sendable, CaseIterable {
    /// Never asked for: the page cache survives a crash of the process, not of the machine.
    case never
    /// Once a second (the default): a power cut loses at most the last second's lines.
    case interval
    /// Before the jobs of each read are handed to the batcher: a power cut loses nothing accepted.
    case always
}

/// A write-ahead log of the input lines the host accepted, in `--spool DIR`: what lets a
/// `kill -9`, an OOM kill or a power cut lose no accepted job.
///
/// Lines are appended (``SpoolRecord``, in segments `segment-N.log`) before their jobs reach the
/// batcher; a line is done once its result line was written, and the done ledger
/// (``SpoolLedger``) says so. A segment whose lines are all done is deleted, always after the
/// ledger that covers it is on disk. On start, lines accepted but not done are replayed. One
/// host per spool: `DIR/lock` is held with `flock`. What to do when is decided by
/// ``SpoolStateMachine``; this type does the I/O, outside its lock.
///
/// A full disk is never silent: an append that finds no room is cut back, and reading pauses
/// (saying so) until answered lines free room or the disk has some again; a ledger that cannot
/// be written is said once, kept in memory and written again. The spool's files are the host's
/// alone: the folder is 0700, its files 0600, and none is opened through a symbolic link.
final class Spool: Sendable {
    /// What opening a spool found: lines to replay, where input resumes, and what it repaired.
    struct Recovery {
        var pending: [SpoolRecord] = []
        var inputOffset: UInt64 = 0
        var report: [String] = []
    }

    /// A line to append: its bytes, its number, and the input file's offset after it (0 for a pipe).
    struct Line {
        let bytes: ArraySlice<UInt8>
        let number: Int
        let inputEnd: UInt64
    }

    /// What an append came to.
    enum AppendResult: Equatable {
        /// The lines are in the spool, with these sequences.
        case spooled([UInt64])
        /// It waited for room and ``interrupt()`` was called (the host stops): not spooled.
        case interrupted
        /// The spool cannot be written (an I/O error other than a full disk): not spooled.
        case failed(Errno)
    }

    /// An open segment file: the reader writes it, the timer syncs it; closed when both let go.
    private final class SegmentFile: Sendable {
        let descriptor: Int32
        init(descriptor: Int32) { self.descriptor = descriptor }
        deinit { Glibc.close(descriptor) }
    }

    private struct State {
        var machine: SpoolStateMachine
        var active: SegmentFile?
        /// Readers waiting for room.
        var waiters: [DispatchSemaphore] = []
        var isInterrupted = false
        /// The ledger failure last reported, so that each is said once.
        var reportedLedgerFailure: Errno?
    }

    let directory: String
    let policy: SpoolSyncPolicy
    let maxBytes: Int

    /// Bytes in the spool's segments now (`batchman_spool_bytes`).
    var bytes: Int { state.withLock { $0.machine.liveBytes } }
    private let lock: Int32
    private let state: Mutex<State>
    private let logger: BatchmanLogger
    private let stopTimer = DispatchSemaphore(value: 0)
    private let timerStopped = DispatchSemaphore(value: 0)

    static let defaultMaxBytes = 1 << 30
    static let defaultSegmentBytes = 64 << 20
    /// How often a reader paused by a full disk tries again (room may be freed by others).
    static let diskFullRetry = DispatchTimeInterval.seconds(1)

    private var ledgerPath: String { "\(directory)/ledger" }

    private init(directory: String, policy: SpoolSyncPolicy, maxBytes: Int, lock: Int32, machine: SpoolStateMachine, logger: BatchmanLogger) {
        self.directory = directory
        self.policy = policy
        self.maxBytes = maxBytes
        self.lock = lock
        self.state = Mutex(State(machine: machine))
        self.logger = logger
    }

    // MARK: - Running

    /// Appends `lines` and returns their sequences, after waiting (blocking the reader) while
    /// the spool holds `maxBytes` or the disk is full; `onPause` is told why before each wait
    /// for a new reason, and `onResume` when the lines went in after one. With `--fsync always`
    /// the lines are on disk when it returns.
    func append(_ lines: [Line], onPause: (SpoolStateMachine.Pause) -> Void = { _ in }, onResume: () -> Void = {}) -> AppendResult {
        guard !lines.isEmpty else { return .spooled([]) }
        let bytes = lines.reduce(0) { $0 + SpoolRecord.headerSize + $1.bytes.count }
        var pausedFor: SpoolStateMachine.Pause?
        func pause(_ why: SpoolStateMachine.Pause) -> Bool {
            if pausedFor != why { onPause(why) }
            pausedFor = why
            return waitForRoom(timeout: why == .diskFull ? Self.diskFullRetry : nil)
        }
        while true {
            let (step, size) = state.withLock { state in (state.machine.beginAppend(bytes: bytes), state.machine.active?.bytes ?? 0) }
            switch step {
            case .closed:
                return .interrupted
            case .pause(let why):
                guard pause(why) else { return .interrupted }
            case .write(let first, let newSegment):
                if let newSegment {
                    switch Syscall.open(newSegment, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW) {
                    case .success(let descriptor):
                        state.withLock { $0.active = SegmentFile(descriptor: descriptor) }
                        FileIO.syncFolder(directory)
                    case .failure(let error) where error.isOutOfSpace:
                        perform(state.withLock { $0.machine.appendFoundDiskFull(now: Syscall.monotonicNanoseconds()) })
                        guard pause(.diskFull) else { return .interrupted }
                        continue
                    case .failure(let error):
                        return .failed(error)
                    }
                }
                var buffer: [UInt8] = []
                buffer.reserveCapacity(bytes)
                var inputEnd: UInt64 = 0
                for (offset, line) in lines.enumerated() {
                    SpoolRecord(sequence: first + UInt64(offset), inputEnd: line.inputEnd, lineNumber: UInt64(bitPattern: Int64(line.number)), line: Array(line.bytes))
                        .encode(into: &buffer)
                    inputEnd = max(inputEnd, line.inputEnd)
                }
                guard let file = state.withLock({ $0.active }) else { return .interrupted }
                switch Syscall.writeAll(file.descriptor, buffer) {
                case .success:
                    if policy == .always { fdatasync(file.descriptor) }
                    state.withLock { $0.machine.appended(count: lines.count, bytes: buffer.count, inputEnd: inputEnd) }
                    if pausedFor != nil { onResume() }
                    return .spooled((0..<lines.count).map { first + UInt64($0) })
                case .failure(let error):
                    // What the write managed goes: no torn record stays behind.
                    ftruncate(file.descriptor, off_t(size))
                    guard error.isOutOfSpace else { return .failed(error) }
                    perform(state.withLock { $0.machine.appendFoundDiskFull(now: Syscall.monotonicNanoseconds()) })
                    guard pause(.diskFull) else { return .interrupted }
                }
            }
        }
    }

    /// Makes an append waiting for room return ``AppendResult/interrupted``, now and from now
    /// on: the host is stopping. Safe from any thread.
    func interrupt() {
        let waiters = state.withLock { state in
            state.isInterrupted = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.signal() }
    }

    /// Lines whose result lines were written: done. The ledger is replaced soon (in the page
    /// cache, which survives a crash of the process, so a kill -9 replays nothing already
    /// answered) and synced once a second (`interval`, `always`).
    func markDone(_ sequences: [UInt64]) {
        guard !sequences.isEmpty else { return }
        perform(state.withLock { $0.machine.markDone(sequences, now: Syscall.monotonicNanoseconds()) })
    }

    /// Writes the ledger and syncs, deletes what is done, and releases the spool's lock. Call
    /// once reading and writing have ended.
    func close() {
        stopTimer.signal()
        guard let (write, done) = state.withLock({ $0.machine.close() }) else { return }
        timerStopped.wait()
        if policy != .never, let active = state.withLock({ $0.active }) { fdatasync(active.descriptor) }
        if case .failure(let error) = FileIO.replace(ledgerPath, with: write.bytes, sync: write.sync) {
            logger.log(.error, "spool: \(ledgerPath) could not be written at the end (\(error)); the next run answers again what this one answered since")
        } else {
            for segment in done { unlink(segment.path) }
            if !done.isEmpty { FileIO.syncFolder(directory) }
        }
        let waiters = state.withLock { state in
            state.active = nil
            state.isInterrupted = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.signal() }
        Glibc.close(lock)
    }

    /// Waits until room may have been freed (a segment went), `timeout` passed, or the spool
    /// was interrupted; false if it was interrupted.
    private func waitForRoom(timeout: DispatchTimeInterval?) -> Bool {
        let waiter = DispatchSemaphore(value: 0)
        let interrupted = state.withLock { state -> Bool in
            if !state.isInterrupted { state.waiters.append(waiter) }
            return state.isInterrupted
        }
        guard !interrupted else { return false }
        if let timeout { _ = waiter.wait(timeout: .now() + timeout) } else { waiter.wait() }
        return !state.withLock { $0.isInterrupted }
    }

    /// Carries out what the state machine asked for, reporting each result back to it.
    private func perform(_ actions: [SpoolStateMachine.Action]) {
        var queue = actions
        while !queue.isEmpty {
            switch queue.removeFirst() {
            case .persistLedger(let write):
                let result = FileIO.replace(ledgerPath, with: write.bytes, sync: write.sync)
                let (next, report) = state.withLock { state -> ([SpoolStateMachine.Action], String?) in
                    let next = state.machine.persisted(write, result: result, now: Syscall.monotonicNanoseconds())
                    var report: String?
                    switch result {
                    case .failure(let error) where state.reportedLedgerFailure != error:
                        state.reportedLedgerFailure = error
                        let room = error.isOutOfSpace
                            ? "; segments whose lines are all answered are deleted without it to make room (a crash before it is written answers them again)" : ""
                        report = "spool: \(ledgerPath) cannot be written (\(error)); which lines are answered is kept in memory and written again shortly\(room)"
                    case .success where state.reportedLedgerFailure != nil:
                        state.reportedLedgerFailure = nil
                        report = "spool: \(ledgerPath) is written again"
                    default:
                        break
                    }
                    return (next, report)
                }
                if let report { logger.log(result.isSuccess ? .info : .error, report) }
                queue += next
            case .delete(let segments):
                for segment in segments { unlink(segment.path) }
                FileIO.syncFolder(directory)
                let waiters = state.withLock { state in
                    state.machine.deleted(bytes: segments.reduce(0) { $0 + $1.bytes })
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.signal() }
            case .syncActive:
                if let active = state.withLock({ $0.active }) { fdatasync(active.descriptor) }
            }
        }
    }

    /// Every 10 ms: writes a ledger that changed since; once a second: syncs (see
    /// ``SpoolStateMachine/tick(now:everySecond:)``).
    private func runTimer() {
        var ticks = 0
        while stopTimer.wait(timeout: .now() + .milliseconds(10)) == .timedOut {
            ticks += 1
            perform(state.withLock { $0.machine.tick(now: Syscall.monotonicNanoseconds(), everySecond: ticks % 100 == 0) })
        }
        timerStopped.signal()
    }

    // MARK: - Opening and recovery

    /// Takes the spool in `directory` (made if missing), repairs in place what a crash left, and
    /// returns it with the lines to replay. With `input` (the `--input` file), reading resumes
    /// where the spool stopped only if it is the file the spool was reading.
    /// - Throws: ``HostError`` if another host holds the spool or the folder cannot be used.
    /// - Parameter maxBytes: the spool's bound; segments are a quarter of it at most (64 MiB),
    ///   so that done segments free room long before the bound is reached.
    static func open(
        directory: String, policy: SpoolSyncPolicy, maxBytes: Int, input: Int32? = nil, logger: BatchmanLogger = .standardError
    ) throws(HostError) -> (Spool, Recovery) {
        var recovery = Recovery()
        for folder in [directory, "\(directory)/quarantine"] { try makePrivateFolder(folder, in: directory, report: &recovery.report) }
        let lock = try takeLock(directory)

        let ledgerPath = "\(directory)/ledger"
        unlink("\(ledgerPath).tmp")  // a replacement that never reached its rename
        let scan = SpoolScan(directory: directory)
        var ledger = scan.ledger ?? SpoolLedger()
        if scan.ledgerIsDamaged {
            let aside = "\(directory)/quarantine/ledger-\(time(nil)).damaged"
            rename(ledgerPath, aside)
            recovery.report.append("the done ledger was damaged; moved to \(aside). Every line still in the spool is replayed (results are at least once)")
        }
        ledger.inputOffset = max(ledger.inputOffset, scan.inputOffset)
        let segments = repair(scan, in: directory, report: &recovery.report)
        let pending = scan.records.values.filter { !ledger.isDone($0.sequence) }.sorted { $0.sequence < $1.sequence }
        let highestSequence = max(ledger.watermark, scan.highestSequence)

        // The lines to replay stay where they are, in their segments: recovery needs no room
        // of its own, so it works on a full disk. Every other sequence up to the highest is done
        // or gone (quarantined), and the new ledger says so, so that it can move past them.
        var repaired = SpoolLedger()
        repaired.inputOffset = resumeOffset(of: input, ledger: ledger, report: &recovery.report)
        repaired.input = input.flatMap(SpoolInput.of)
        if let first = pending.first {
            repaired.advance(to: first.sequence - 1)
            // The gaps between lines to replay span no more than the spool holds.
            var expected = first.sequence
            for record in pending {
                while expected < record.sequence {
                    repaired.markDone(expected)
                    expected += 1
                }
                expected = record.sequence + 1
            }
            while expected <= highestSequence {
                repaired.markDone(expected)
                expected += 1
            }
        } else {
            repaired.advance(to: highestSequence)
        }
        recovery.pending = pending
        recovery.inputOffset = repaired.inputOffset
        if case .failure(let error) = FileIO.replace(ledgerPath, with: repaired.encoded(), sync: true) {
            recovery.report.append("\(ledgerPath) could not be written (\(error)); it is kept in memory and written again shortly")
        }

        let machine = SpoolStateMachine(directory: directory, policy: policy, maxBytes: maxBytes, segmentBytes: min(defaultSegmentBytes, maxBytes / 4),
                                        ledger: repaired, segments: segments, nextSequence: highestSequence + 1)
        let spool = Spool(directory: directory, policy: policy, maxBytes: maxBytes, lock: lock, machine: machine, logger: logger)
        DedicatedThread.start(name: "batchman-spool") { spool.runTimer() }
        return (spool, recovery)
    }

    /// Where reading `input` resumes: where the spool stopped if it is the same file, else 0.
    private static func resumeOffset(of input: Int32?, ledger: SpoolLedger, report: inout [String]) -> UInt64 {
        guard let input, ledger.inputOffset > 0 else { return 0 }
        guard let saved = ledger.input else {
            // A ledger of an earlier version, which did not record the file: the offset alone.
            var status = stat()
            guard fstat(input, &status) == 0, UInt64(status.st_size) >= ledger.inputOffset else {
                report.append("--input is shorter than where the spool stopped reading (byte \(ledger.inputOffset)): it is another file; reading it from the start")
                return 0
            }
            return ledger.inputOffset
        }
        if let why = saved.mismatch(input, offset: ledger.inputOffset) {
            report.append("--input is not the file the spool was reading (\(why)); reading it from the start, not from byte \(ledger.inputOffset)")
            return 0
        }
        return ledger.inputOffset
    }

    /// Cuts torn tails off and sets damage aside, in place; returns the segments as they are now.
    private static func repair(_ scan: SpoolScan, in directory: String, report: inout [String]) -> [SpoolStateMachine.Segment] {
        var sizes = Dictionary(uniqueKeysWithValues: scan.files.map { ($0.path, $0.bytes) })
        func truncate(_ path: String, at offset: Int) {
            guard case .success(let descriptor) = Syscall.open(path, O_WRONLY | O_NOFOLLOW) else { return }
            ftruncate(descriptor, off_t(offset))
            Glibc.close(descriptor)
            sizes[path] = offset
        }
        for cut in scan.cuts {
            truncate(cut.path, at: cut.offset)
            report.append("\(cut.path): \(cut.bytes) bytes at byte \(cut.offset) are \(cut.isTail ? "a write cut short by the crash" : "a damaged end"); cut off")
        }
        for damage in scan.damaged {
            let aside = "\(directory)/quarantine/\(URL(fileURLWithPath: damage.path).lastPathComponent)-\(damage.offset).record"
            let kept = FileIO.replace(aside, with: damage.bytes, sync: true)
            if damage.isRestOfSegment { truncate(damage.path, at: damage.offset) }
            switch kept {
            case .success:
                report.append("\(damage.path): a damaged record at byte \(damage.offset) (checksum or length wrong) moved to \(aside)"
                              + (damage.isRestOfSegment ? "; the rest of the segment cannot be read" : ""))
            case .failure(let error):
                report.append("\(damage.path): a damaged record at byte \(damage.offset) (checksum or length wrong) could not be set aside (\(error))")
            }
        }
        if !scan.damaged.isEmpty { report.append("\(scan.damaged.count) damaged record(s) quarantined; the jobs in them cannot be answered") }
        var segments: [SpoolStateMachine.Segment] = []
        for file in scan.files {
            if file.isSymbolicLink {
                let aside = "\(directory)/quarantine/\(URL(fileURLWithPath: file.path).lastPathComponent).link"
                rename(file.path, aside)
                report.append("\(file.path) is a symbolic link, not a segment of this spool; moved to \(aside), never followed")
                continue
            }
            segments.append(SpoolStateMachine.Segment(path: file.path, lastSequence: file.lastSequence, bytes: sizes[file.path] ?? file.bytes))
        }
        return segments
    }

    /// Makes `folder` (0700), or tightens an existing one that others could read.
    private static func makePrivateFolder(_ folder: String, in directory: String, report: inout [String]) throws(HostError) {
        if mkdir(folder, 0o700) == 0 { return }
        let error = Errno.current
        guard error.rawValue == EEXIST else { throw HostError(.usage, "--spool \(directory): cannot create \(folder): \(error)") }
        var status = stat()
        guard lstat(folder, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw HostError(.usage, "--spool \(directory): \(folder) is not a folder; give --spool a folder of its own")
        }
        if status.st_mode & 0o077 != 0 {
            chmod(folder, 0o700)
            report.append("\(folder) could be read by other users (mode 0\(String(status.st_mode & 0o777, radix: 8))): made it 0700, as the lines it holds are private")
        }
    }

    /// Opens and locks `DIR/lock`, never through a symbolic link, and writes the holder's pid.
    private static func takeLock(_ directory: String) throws(HostError) -> Int32 {
        let path = "\(directory)/lock"
        let lock: Int32
        switch Syscall.open(path, O_RDWR | O_CREAT | O_NOFOLLOW) {
        case .success(let descriptor):
            lock = descriptor
        case .failure(let error) where error.rawValue == ELOOP:
            throw HostError(.usage, "--spool \(directory): \(path) is a symbolic link; a spool's files are its own and are never followed: remove it")
        case .failure(let error):
            throw HostError(.usage, "--spool \(directory): cannot open its lock file: \(error)")
        }
        fchmod(lock, 0o600)
        if flock(lock, LOCK_EX | LOCK_NB) != 0 {
            Glibc.close(lock)
            throw HostError(.runtime, "--spool \(directory) is in use by another batchman\(holder(of: directory).map { " (pid \($0))" } ?? ""); "
                            + "a spool serves one host at a time: stop that host or give this one another folder")
        }
        ftruncate(lock, 0)
        _ = Syscall.writeAll(lock, Array("\(HostProcessIdentity.visiblePID)\n".utf8))
        return lock
    }

    /// The pid the host holding the spool wrote into `DIR/lock`, if any.
    static func holder(of directory: String) -> String? {
        let pid = String(decoding: (FileIO.read("\(directory)/lock", noFollow: true) ?? []).filter { (0x30...0x39).contains($0) }, as: UTF8.self)
        return pid.isEmpty ? nil : pid
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
