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
/// host per spool: `DIR/lock` is held with `flock`.
final class Spool: Sendable {
    /// What opening a spool found: lines to replay, where input resumes, and what it repaired.
    struct Recovery {
        var pending: [SpoolRecord] = []
        var inputOffset: UInt64 = 0
        var report: [String] = []
    }

    private struct Segment {
        let path: String
        var lastSequence: UInt64
        var bytes: Int
    }

    private struct State {
        var ledger: SpoolLedger
        /// Oldest first; the last is the one being appended to.
        var segments: [Segment]
        var active: Int32
        var nextSequence: UInt64
        var liveBytes: Int
        /// The ledger on disk (in the page cache) is newer than the last one synced.
        var ledgerUnsynced = false
        /// The ledger in memory is newer than the one on disk.
        var ledgerUnwritten = false
        /// When the ledger was last written (monotonic nanoseconds).
        var ledgerWrittenAt: UInt64 = 0
        var isClosed = false
        /// Readers waiting for room (`--spool-max-bytes`).
        var roomWaiters: [DispatchSemaphore] = []
    }

    let directory: String
    let policy: SpoolSyncPolicy
    let maxBytes: Int
    let segmentBytes: Int
    private let lock: Int32
    private let state: Mutex<State>
    private let stopTimer = DispatchSemaphore(value: 0)

    static let defaultMaxBytes = 1 << 30
    static let defaultSegmentBytes = 64 << 20

    private init(directory: String, policy: SpoolSyncPolicy, maxBytes: Int, segmentBytes: Int, lock: Int32, state: State) {
        self.directory = directory
        self.policy = policy
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.lock = lock
        self.state = Mutex(state)
    }

    // MARK: - Opening and recovery

    /// Takes the spool in `directory` (made if missing), repairs what a crash left, and returns
    /// it with the lines to replay.
    /// - Throws: ``HostError`` if another host holds the spool or the folder cannot be used.
    /// - Parameter maxBytes: the spool's bound; segments are a quarter of it at most (64 MiB),
    ///   so that done segments free room long before the bound is reached.
    static func open(directory: String, policy: SpoolSyncPolicy, maxBytes: Int) throws(HostError) -> (Spool, Recovery) {
        let segmentBytes = min(defaultSegmentBytes, maxBytes / 4)
        for folder in [directory, "\(directory)/quarantine"] where mkdir(folder, 0o755) != 0 && errno != EEXIST {
            throw HostError(.usage, "--spool \(directory): cannot create \(folder): \(Errno.current)")
        }
        let lock = Glibc.open("\(directory)/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw HostError(.usage, "--spool \(directory): cannot open its lock file: \(Errno.current)") }
        if flock(lock, LOCK_EX | LOCK_NB) != 0 {
            Glibc.close(lock)
            throw HostError(.runtime, "--spool \(directory) is in use by another batchman\(holder(of: directory).map { " (pid \($0))" } ?? ""); "
                            + "a spool serves one host at a time: stop that host or give this one another folder")
        }
        ftruncate(lock, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(lock, $0.baseAddress, $0.count, 0) }

        var recovery = Recovery()
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
        for cut in scan.cuts {
            recovery.report.append("\(cut.path): \(cut.bytes) bytes at byte \(cut.offset) are \(cut.isTail ? "a write cut short by the crash" : "a damaged end"); cut off")
        }
        for damage in scan.damaged {
            let aside = "\(directory)/quarantine/\(URL(fileURLWithPath: damage.path).lastPathComponent)-\(damage.offset).record"
            FileIO.replace(aside, with: damage.bytes, sync: true)
            recovery.report.append("\(damage.path): a damaged record at byte \(damage.offset) (checksum or length wrong) moved to \(aside)"
                                   + (damage.isRestOfSegment ? "; the rest of the segment cannot be read" : ""))
        }
        if !scan.damaged.isEmpty { recovery.report.append("\(scan.damaged.count) damaged record(s) quarantined; the jobs in them cannot be answered") }
        let pending = scan.records.filter { !ledger.isDone($0.key) }
        let highestSequence = max(ledger.watermark, scan.highestSequence)
        let segmentPaths = scan.segments

        // The lines to replay go to a fresh segment, and the old ones are deleted: damage and torn
        // tails are gone from the spool, and it starts compact. (A crash in between leaves a line
        // in two segments: it is replayed once, by sequence.)
        recovery.pending = pending.values.sorted { $0.sequence < $1.sequence }
        recovery.inputOffset = ledger.inputOffset
        let nextSequence = highestSequence + 1
        let activePath = SpoolFiles.segmentPath(in: directory, number: nextSequence)
        var compacted: [UInt8] = []
        for record in recovery.pending { record.encode(into: &compacted) }
        guard case .success = FileIO.replace(activePath, with: compacted, sync: true) else {
            throw HostError(.runtime, "--spool \(directory): cannot write \(activePath): \(Errno.current)")
        }
        // The spool now holds only the lines to replay: every other sequence up to the highest is
        // done or gone (quarantined), and the ledger says so, so that it can move past them.
        let inputOffset = ledger.inputOffset
        ledger = SpoolLedger()
        ledger.inputOffset = inputOffset
        if let first = recovery.pending.first {
            ledger.advance(to: first.sequence - 1)
            // The gaps between lines to replay span no more than the spool held.
            var expected = first.sequence
            for record in recovery.pending {
                while expected < record.sequence {
                    ledger.markDone(expected)
                    expected += 1
                }
                expected = record.sequence + 1
            }
            while expected < nextSequence {
                ledger.markDone(expected)
                expected += 1
            }
        } else {
            ledger.advance(to: nextSequence - 1)
        }
        guard case .success = FileIO.replace(ledgerPath, with: ledger.encoded(), sync: true) else {
            throw HostError(.runtime, "--spool \(directory): cannot write its ledger: \(Errno.current)")
        }
        for path in segmentPaths where path != activePath { unlink(path) }
        FileIO.syncFolder(directory)

        let active = Glibc.open(activePath, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard active >= 0 else { throw HostError(.runtime, "--spool \(directory): cannot open \(activePath): \(Errno.current)") }
        let segment = Segment(path: activePath, lastSequence: recovery.pending.last?.sequence ?? 0, bytes: compacted.count)
        let spool = Spool(directory: directory, policy: policy, maxBytes: maxBytes, segmentBytes: segmentBytes, lock: lock, state: State(
            ledger: ledger, segments: [segment], active: active, nextSequence: nextSequence, liveBytes: compacted.count))
        DedicatedThread.start(name: "batchman-spool") { spool.runTimer() }
        return (spool, recovery)
    }

    /// The pid the host holding the spool wrote into `DIR/lock`, if any.
    static func holder(of directory: String) -> String? {
        let pid = String(decoding: (FileIO.read("\(directory)/lock") ?? []).filter { (0x30...0x39).contains($0) }, as: UTF8.self)
        return pid.isEmpty ? nil : pid
    }

    // MARK: - Running

    /// A line to append: its bytes, its number, and the input file's offset after it (0 for a pipe).
    struct Line {
        let bytes: ArraySlice<UInt8>
        let number: Int
        let inputEnd: UInt64
    }

    /// Appends `lines` and returns their sequences, after waiting (blocking the reader) while
    /// the spool holds `maxBytes`; `onPause` is told before the first such wait. With
    /// `--fsync always` the lines are on disk when it returns.
    func append(_ lines: [Line], onPause: () -> Void = {}) -> [UInt64] {
        guard !lines.isEmpty else { return [] }
        waitForRoom(onPause: onPause)
        return state.withLock { state -> [UInt64] in
            var buffer: [UInt8] = []
            var sequences: [UInt64] = []
            sequences.reserveCapacity(lines.count)
            var inputEnd: UInt64 = 0
            for line in lines {
                let sequence = state.nextSequence
                state.nextSequence += 1
                SpoolRecord(sequence: sequence, inputEnd: line.inputEnd, lineNumber: UInt64(line.number), line: Array(line.bytes))
                    .encode(into: &buffer)
                sequences.append(sequence)
                inputEnd = max(inputEnd, line.inputEnd)
            }
            guard !state.isClosed else { return sequences }
            // The ledger's input offset moves only once the lines are written: a ledger written
            // while the append is cut short by a crash must not skip lines the spool lacks.
            guard FileIO.writeAll(state.active, buffer) else { return sequences }
            state.ledger.inputOffset = max(state.ledger.inputOffset, inputEnd)
            if policy == .always { fdatasync(state.active) }
            state.segments[state.segments.count - 1].lastSequence = sequences.last!
            state.segments[state.segments.count - 1].bytes += buffer.count
            state.liveBytes += buffer.count
            if state.segments[state.segments.count - 1].bytes >= segmentBytes { rotate(&state) }
            return sequences
        }
    }

    /// Lines whose result lines were written: done. The ledger is replaced at once (in the
    /// page cache, which survives a crash of the process, so a kill -9 replays nothing already
    /// answered) and synced once a second (`interval`, `always`).
    func markDone(_ sequences: [UInt64]) {
        guard !sequences.isEmpty else { return }
        let waiters = state.withLock { state -> [DispatchSemaphore] in
            guard !state.isClosed else { return [] }
            for sequence in sequences { state.ledger.markDone(sequence) }
            let waiters = deleteDoneSegments(&state)
            // At most every 10 ms under load: a kill -9 then answers again at most the results of
            // the last 10 ms (at least once), and the ledger costs little however fast results come.
            if Syscall.monotonicNanoseconds() - state.ledgerWrittenAt >= 10_000_000 {
                persistLedger(&state, sync: false)
            } else {
                state.ledgerUnwritten = true
            }
            return waiters
        }
        for waiter in waiters { waiter.signal() }
    }

    /// Writes the ledger and syncs, deletes what is done, and releases the spool's lock.
    func close() {
        let waiters = state.withLock { state -> [DispatchSemaphore] in
            guard !state.isClosed else { return [] }
            if policy != .never { fdatasync(state.active) }
            let waiters = deleteDoneSegments(&state)
            persistLedger(&state, sync: policy != .never)
            state.isClosed = true
            Glibc.close(state.active)
            // Everything answered: the active segment goes too (the next run starts a new one).
            if let last = state.segments.last, last.lastSequence <= state.ledger.watermark {
                unlink(last.path)
                state.liveBytes -= last.bytes
                state.segments.removeLast()
                FileIO.syncFolder(directory)
            }
            return waiters + state.roomWaiters
        }
        for waiter in waiters { waiter.signal() }
        stopTimer.signal()
        Glibc.close(lock)
    }

    private func waitForRoom(onPause: () -> Void) {
        var paused = false
        while true {
            let waiter = DispatchSemaphore(value: 0)
            let mustWait = state.withLock { state -> Bool in
                guard !state.isClosed, state.liveBytes >= maxBytes else { return false }
                state.roomWaiters.append(waiter)
                return true
            }
            guard mustWait else { return }
            if !paused { onPause() }
            paused = true
            waiter.wait()
        }
    }

    /// Seals the active segment and opens the next.
    private func rotate(_ state: inout State) {
        if policy != .never { fdatasync(state.active) }
        Glibc.close(state.active)
        let path = SpoolFiles.segmentPath(in: directory, number: state.nextSequence)
        state.active = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        state.segments.append(Segment(path: path, lastSequence: state.nextSequence - 1, bytes: 0))
        FileIO.syncFolder(directory)
    }

    /// Deletes sealed segments whose lines are all done, the ledger that says so written first.
    private func deleteDoneSegments(_ state: inout State) -> [DispatchSemaphore] {
        let done = state.segments.dropLast().prefix { $0.lastSequence <= state.ledger.watermark }
        guard !done.isEmpty else { return [] }
        persistLedger(&state, sync: policy != .never)
        for segment in done {
            unlink(segment.path)
            state.liveBytes -= segment.bytes
        }
        state.segments.removeFirst(done.count)
        FileIO.syncFolder(directory)
        defer { state.roomWaiters = [] }
        return state.roomWaiters
    }

    private func persistLedger(_ state: inout State, sync: Bool) {
        FileIO.replace("\(directory)/ledger", with: state.ledger.encoded(), sync: sync)
        state.ledgerUnsynced = !sync
        state.ledgerUnwritten = false
        state.ledgerWrittenAt = Syscall.monotonicNanoseconds()
    }

    /// Every 10 ms: writes a ledger that changed since (so a quiet spool's last results are
    /// recorded too); once a second: syncs the active segment (`interval`) and the ledger
    /// (`interval`, `always`).
    private func runTimer() {
        var ticks = 0
        while stopTimer.wait(timeout: .now() + .milliseconds(10)) == .timedOut {
            ticks += 1
            let stop = state.withLock { state -> Bool in
                guard !state.isClosed else { return true }
                if state.ledgerUnwritten { persistLedger(&state, sync: false) }
                if ticks % 100 == 0 {
                    if policy == .interval { fdatasync(state.active) }
                    if state.ledgerUnsynced, policy != .never { persistLedger(&state, sync: true) }
                }
                return false
            }
            if stop { return }
        }
    }
}
