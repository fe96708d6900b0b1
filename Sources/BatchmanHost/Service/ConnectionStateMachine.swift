/// One client connection's decisions, with no thread or descriptor in sight: whether its lines
/// are read, who may write its results, what waits to be written, and when it closes.
///
/// Results arrive on the threads that settle batches; one of them at a time holds the right to
/// write (`writing: .busy`), the others leave their lines in `backlog`, which the writer takes
/// before it lets go. A write that would block leaves the rest for the input loop, which
/// writes it when the socket is writable. Only the input loop closes the descriptor, once the
/// phase is `closed` and nobody writes: a descriptor number is never reused under a writer.
struct ConnectionStateMachine: Equatable {
    enum Reading: Equatable {
        /// The loop reads its lines.
        case open
        /// Its unwritten results reached the bound: its lines wait until they are half written.
        case paused
        /// The client shut its side, or the host stopped reading: no more lines.
        case ended
    }

    enum Writing: Equatable {
        /// Nobody writes, and `backlog` is empty.
        case idle
        /// A thread writes; results arriving meanwhile join `backlog`.
        case busy
        /// The socket was full: the loop writes `backlog` when it is writable.
        case blocked
    }

    enum Phase: Equatable {
        case open(Reading, Writing)
        /// The client is gone while a thread still writes to its socket: closed once it is done.
        case leaving
        /// Done with (every result written after the client's end, or the client is gone): the
        /// loop closes the descriptor; later results are orphans.
        case closed
    }

    let maxBacklogBytes: Int
    private(set) var phase = Phase.open(.open, .idle)
    /// Jobs accepted from this client without a result handed over yet.
    private(set) var outstanding = 0
    /// Result bytes waiting for the writer, and how many results they hold.
    private(set) var backlog: [UInt8] = []
    private(set) var backlogResults = 0
    /// Results the writing thread holds, not yet wholly written.
    private(set) var inHand = 0
    /// Results dropped because the client went away before they were written.
    private(set) var dropped = 0
    /// The `--max-pending-bytes` charge of the results the writer holds and of the backlog's:
    /// a result keeps its job's charge until it is written (or dropped), so clients that do not
    /// read cannot hold more memory than the host's bound.
    private(set) var inHandCharge = 0
    private(set) var backlogCharge = 0
    /// Charge released since the owner last took it (``takeReleasedCharge()``).
    private(set) var releasedCharge = 0
    /// Whether the client went away before its results (counted once it closes).
    private(set) var clientIsGone = false

    init(maxBacklogBytes: Int) {
        self.maxBacklogBytes = maxBacklogBytes
    }

    /// Whether the loop should read the connection's lines now.
    var wantsInput: Bool { phase == .open(.open, .idle) || phase == .open(.open, .busy) || phase == .open(.open, .blocked) }
    /// Whether the loop should wait for the socket to be writable.
    var wantsWritable: Bool { if case .open(_, .blocked) = phase { true } else { false } }
    var isClosed: Bool { phase == .closed }

    /// `count` jobs from this client were taken in (answered at once or submitted).
    mutating func accepted(_ count: Int) {
        outstanding += count
    }

    enum DeliverAction: Equatable {
        /// Write these bytes now; then report with ``wrote(unwritten:failed:)``.
        case write([UInt8])
        /// They wait in the backlog for the thread that writes.
        case queued
        /// The connection is closed: the results are dropped, and counted.
        case orphaned
    }

    /// Results for `count` jobs, encoded as `lines`, whose jobs were charged `charge` bytes.
    mutating func deliver(_ lines: [UInt8], count: Int, charge: Int = 0) -> DeliverAction {
        guard case .open(let reading, let writing) = phase else {
            releasedCharge += charge
            return .orphaned
        }
        outstanding -= count
        switch writing {
        case .idle:
            phase = .open(reading, .busy)
            inHand = count
            inHandCharge = charge
            return .write(lines)
        case .busy, .blocked:
            backlog += lines
            backlogResults += count
            backlogCharge += charge
            if reading == .open, backlog.count >= maxBacklogBytes { phase = .open(.paused, writing) }
            return .queued
        }
    }

    enum WroteAction: Equatable {
        /// Write these bytes too (they arrived during the write).
        case write([UInt8])
        /// Nothing more to write.
        case done
        /// Nothing more, and reading may resume: wake the loop so that it polls the connection.
        case resumeReading
        /// The socket is full: wake the loop so that it waits for it to be writable.
        case waitForWritable
        /// The connection is finished or the client is gone: wake the loop to close it.
        case close
    }

    /// The writer wrote, leaving `unwritten` (the socket was full), or the write `failed` (the
    /// client is gone).
    mutating func wrote(unwritten: ArraySlice<UInt8>, failed: Bool) -> WroteAction {
        if phase == .leaving {
            if failed || !unwritten.isEmpty { dropped += inHand }
            inHand = 0
            releaseInHand()
            phase = .closed
            return .close
        }
        guard case .open(let reading, _) = phase else { return .done }
        if failed {
            dropAll()
            phase = .closed
            return .close
        }
        if !unwritten.isEmpty {
            backlog = Array(unwritten) + backlog
            backlogResults += inHand
            backlogCharge += inHandCharge
            inHand = 0
            inHandCharge = 0
            phase = .open(reading == .open && backlog.count >= maxBacklogBytes ? .paused : reading, .blocked)
            return .waitForWritable
        }
        inHand = 0
        releaseInHand()
        if !backlog.isEmpty {
            defer { takeBacklog() }
            phase = .open(reading, .busy)
            return .write(backlog)
        }
        switch reading {
        case .open:
            phase = .open(.open, .idle)
            return .done
        case .paused:
            phase = .open(.open, .idle)
            return .resumeReading
        case .ended:
            guard outstanding == 0 else {
                phase = .open(.ended, .idle)
                return .done
            }
            phase = .closed
            return .close
        }
    }

    /// The socket is writable (the loop polled it): the bytes to write, if the loop is to write.
    mutating func writable() -> [UInt8]? {
        guard case .open(let reading, .blocked) = phase else { return nil }
        phase = .open(reading, .busy)
        defer { takeBacklog() }
        return backlog
    }

    /// The writer takes the backlog whole.
    private mutating func takeBacklog() {
        inHand = backlogResults
        inHandCharge = backlogCharge
        backlogResults = 0
        backlogCharge = 0
        backlog = []
    }

    private mutating func releaseInHand() {
        releasedCharge += inHandCharge
        inHandCharge = 0
    }

    /// The charge released since the last call: the owner hands it back to the bound.
    mutating func takeReleasedCharge() -> Int {
        defer { releasedCharge = 0 }
        return releasedCharge
    }

    /// The client is gone: what waits to be written, and what the writer holds, is dropped.
    private mutating func dropAll() {
        clientIsGone = true
        dropped += inHand + backlogResults
        releasedCharge += inHandCharge + backlogCharge
        inHand = 0
        inHandCharge = 0
        backlogResults = 0
        backlogCharge = 0
        backlog = []
    }

    /// The client shut its side (or the host stopped reading): true if the connection is
    /// finished now (nothing outstanding, nothing to write) and the loop closes it.
    mutating func inputEnded() -> Bool {
        guard case .open(_, let writing) = phase else { return false }
        guard writing == .idle, outstanding == 0 else {
            phase = .open(.ended, writing)
            return false
        }
        phase = .closed
        return true
    }

    /// The client is gone (a read failed, or it hung up): closed, whatever was outstanding, as
    /// soon as no thread writes to it. True if the loop closes it now.
    mutating func clientLeft() -> Bool {
        guard case .open(_, let writing) = phase else { return false }
        // What the busy writer holds is counted when it reports: it may yet be written.
        let held = writing == .busy ? inHand : 0
        let heldCharge = writing == .busy ? inHandCharge : 0
        dropAll()
        dropped -= held
        releasedCharge -= heldCharge
        inHand = held
        inHandCharge = heldCharge
        phase = writing == .busy ? .leaving : .closed
        return phase == .closed
    }
}
