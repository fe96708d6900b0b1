/// The decisions of a spool (``Spool``), with no file in sight: which segment the next lines go
/// to, when reading must pause, when the done ledger is written and with what, and which
/// segments may go once a ledger that covers them is on disk.
///
/// Pure: each event returns what to do, and ``Spool`` does it (writes, renames, unlinks) after
/// releasing its lock, then reports back. Three threads feed it: the reader appends, the writer
/// marks lines done, a timer ticks. One ledger write is under way at a time; a segment is
/// deleted only once a ledger that covers it has been written (and synced, unless `--fsync
/// never`), so a crash at any moment replays every line that was not answered.
struct SpoolStateMachine: Equatable {
    struct Segment: Equatable {
        let path: String
        /// The highest sequence in it; it can go once the watermark reaches this.
        var lastSequence: UInt64
        var bytes: Int
    }

    enum Phase: Equatable {
        case open
        /// The last append found the disk full: reading is paused until a retry succeeds.
        case diskFull
        case closed
    }

    /// Why reading waits.
    enum Pause: Equatable {
        /// The spool holds `--spool-max-bytes` of lines not yet answered.
        case full
        /// The disk (or the quota) is full.
        case diskFull
    }

    enum AppendStep: Equatable {
        /// Write the lines as records numbered from `firstSequence` to the active segment;
        /// `newSegment`: create that file first and make it the active segment.
        case write(firstSequence: UInt64, newSegment: String?)
        case pause(Pause)
        case closed
    }

    enum Action: Equatable {
        /// Replace the ledger with these bytes (fsync with `sync`), then report ``persisted(_:result:now:)``.
        case persistLedger(LedgerWrite)
        /// Unlink these segments (their lines are all done and a ledger says so), then report
        /// ``deleted(bytes:)``.
        case delete([Segment])
        /// fdatasync the active segment (`--fsync interval`).
        case syncActive
    }

    struct LedgerWrite: Equatable {
        let bytes: [UInt8]
        let version: UInt64
        /// The watermark this ledger holds: segments up to it may go once it is written.
        let watermark: UInt64
        let sync: Bool
    }

    let policy: SpoolSyncPolicy
    let maxBytes: Int
    let segmentBytes: Int
    let directory: String
    private(set) var phase = Phase.open
    private(set) var ledger: SpoolLedger
    /// Sealed segments, oldest first: only appended to no more, deleted once done.
    private(set) var sealed: [Segment]
    /// The segment appends go to; nil until the first append (and after a full disk sealed it).
    private(set) var active: Segment?
    private(set) var nextSequence: UInt64
    /// Bytes in every segment: what `maxBytes` bounds.
    private(set) var liveBytes: Int
    /// Counts changes to the ledger; `written` and `synced` say which change is on disk.
    private var version: UInt64 = 1
    private var written: UInt64 = 0
    private var synced: UInt64 = 0
    private var writing: LedgerWrite?
    private var lastWriteAt: UInt64?
    /// Set when a ledger write failed for lack of space; cleared by the next that works.
    private(set) var ledgerFailure: Errno?

    /// Ledger writes under load: at most one per this many nanoseconds, so a kill -9 answers
    /// again at most the results of the last 10 ms, and the ledger costs little.
    static let ledgerInterval: UInt64 = 10_000_000

    init(directory: String, policy: SpoolSyncPolicy, maxBytes: Int, segmentBytes: Int, ledger: SpoolLedger, segments: [Segment], nextSequence: UInt64) {
        self.directory = directory
        self.policy = policy
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.ledger = ledger
        self.sealed = segments
        self.nextSequence = nextSequence
        self.liveBytes = segments.reduce(0) { $0 + $1.bytes }
    }

    // MARK: - The reader

    /// The reader has `bytes` of records to append: where they go, or why it must wait.
    mutating func beginAppend(bytes: Int) -> AppendStep {
        if phase == .closed { return .closed }
        if liveBytes >= maxBytes { return .pause(.full) }
        var newSegment: String?
        if active == nil || active!.bytes >= segmentBytes {
            if let full = active, full.bytes > 0 { sealed.append(full) }
            let path = SpoolFiles.segmentPath(in: directory, number: nextSequence)
            active = Segment(path: path, lastSequence: nextSequence - 1, bytes: 0)
            newSegment = path
        }
        return .write(firstSequence: nextSequence, newSegment: newSegment)
    }

    /// The records of `count` lines, `bytes` long, are in the active segment. `inputEnd`: the
    /// input file's offset after the last of them (0 for a pipe), where a restart resumes.
    mutating func appended(count: Int, bytes: Int, inputEnd: UInt64) {
        nextSequence += UInt64(count)
        active?.lastSequence = nextSequence - 1
        active?.bytes += bytes
        liveBytes += bytes
        if phase == .diskFull { phase = .open }
        // The ledger's offset moves only once the lines are written: a ledger written while an
        // append is cut short by a crash must not skip lines the spool lacks.
        if inputEnd > ledger.inputOffset {
            ledger.inputOffset = inputEnd
            version += 1
        }
    }

    /// The append found no room on the disk (the segment was cut back to where it was). The
    /// active segment, unless it is empty, is sealed, so that once its lines are done it can go
    /// and free its room. Returns what may free room now.
    mutating func appendFoundDiskFull(now: UInt64) -> [Action] {
        phase = .diskFull
        if let full = active, full.bytes > 0 {
            sealed.append(full)
            active = nil
        }
        return ledgerStep(now: now, due: true)
    }

    // MARK: - The writer and the timer

    /// The lines with these sequences were answered (their result lines written).
    mutating func markDone(_ sequences: [UInt64], now: UInt64) -> [Action] {
        guard phase != .closed, !sequences.isEmpty else { return [] }
        for sequence in sequences { ledger.markDone(sequence) }
        version += 1
        let due = lastWriteAt.map { now - $0 >= Self.ledgerInterval } ?? true
        return ledgerStep(now: now, due: due || hasDeletableSegments)
    }

    /// Every 10 ms: a ledger that changed since it was last written is written (a quiet
    /// spool's last results are recorded too); every second (`sync`) the active segment is
    /// synced (`interval`) and the ledger too (`interval`, `always`).
    mutating func tick(now: UInt64, everySecond: Bool) -> [Action] {
        guard phase != .closed else { return [] }
        var actions: [Action] = []
        if everySecond, policy == .interval, active != nil { actions.append(.syncActive) }
        let unsynced = everySecond && policy != .never && synced < written
        actions += ledgerStep(now: now, due: true, syncNow: unsynced)
        return actions
    }

    /// A ledger write ended. On success, the segments it covers go; on a full disk, the oldest
    /// segment whose lines are all done goes without it, to make room for the next try (a crash
    /// before then answers those lines again: duplicates, never a loss).
    mutating func persisted(_ write: LedgerWrite, result: Result<Void, Errno>, now: UInt64) -> [Action] {
        writing = nil
        lastWriteAt = now
        switch result {
        case .success:
            written = max(written, write.version)
            if write.sync { synced = max(synced, write.version) }
            ledgerFailure = nil
            var actions: [Action] = []
            if policy == .never || write.sync {
                let done = sealed.prefix { $0.lastSequence <= write.watermark }
                if !done.isEmpty {
                    sealed.removeFirst(done.count)
                    actions.append(.delete(Array(done)))
                }
            }
            return actions + ledgerStep(now: now, due: hasDeletableSegments)
        case .failure(let error):
            ledgerFailure = error
            guard error.isOutOfSpace, let oldest = sealed.first, oldest.lastSequence <= ledger.watermark else { return [] }
            sealed.removeFirst()
            return [.delete([oldest])]
        }
    }

    /// Deleted segments of `bytes` in all: room for the reader.
    mutating func deleted(bytes: Int) {
        liveBytes -= bytes
    }

    /// The spool closes: the last ledger, synced unless `never`, and then whatever is done goes,
    /// the active segment too if every line in it is. Call when nothing else runs.
    mutating func close() -> (ledger: LedgerWrite, delete: [Segment])? {
        guard phase != .closed else { return nil }
        phase = .closed
        if let last = active {
            sealed.append(last)
            active = nil
        }
        let done = sealed.prefix { $0.lastSequence <= ledger.watermark }
        sealed.removeFirst(done.count)
        return (LedgerWrite(bytes: ledger.encoded(), version: version, watermark: ledger.watermark, sync: policy != .never), Array(done))
    }

    // MARK: - Internals

    private var hasDeletableSegments: Bool {
        guard let oldest = sealed.first else { return false }
        return oldest.lastSequence <= ledger.watermark
    }

    /// A ledger write, if none is under way and one is due: the ledger changed since it was
    /// last written, (`syncNow`) the last one written is not synced yet, or segments wait for a
    /// ledger to let them go. It is synced when asked to, and when it lets segments go (unless
    /// `never`: then nothing is ever synced).
    private mutating func ledgerStep(now: UInt64, due: Bool, syncNow: Bool = false) -> [Action] {
        guard writing == nil, due, version > written || syncNow || hasDeletableSegments else { return [] }
        let sync = policy != .never && (syncNow || hasDeletableSegments)
        let write = LedgerWrite(bytes: ledger.encoded(), version: version, watermark: ledger.watermark, sync: sync)
        writing = write
        return [.persistLedger(write)]
    }
}
