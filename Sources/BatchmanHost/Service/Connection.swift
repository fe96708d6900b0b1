import Batchman
import Glibc
import Synchronization

/// One client of `--listen`: a source of jobs (the input loop reads its lines) and the
/// destination of their results, written back on the same socket as each batch completes.
///
/// The threads that settle batches write results themselves, one at a time and never blocking
/// (``ConnectionStateMachine`` decides who writes); what a full socket leaves is written by
/// the input loop when the socket is writable. A result is marked done in the spool when its
/// batch settles, not when its bytes reach the client: a crash loses the client with it, so a
/// replay could only answer nobody.
final class Connection: ResultDestination {
    let descriptor: Int32
    /// The connection's scope: ids are unique per key within it (see ``JobTag``).
    let scope: UInt32
    /// "client 3 on unix:batchman.sock", for the log.
    let name: String
    private let state: Mutex<ConnectionStateMachine>
    private let spool: Spool?
    private let pending: PendingBytes?
    private let counters: ServiceCounters
    /// Wakes the input loop: the connection's reading may resume, its socket waits to be
    /// writable, or it is to be closed.
    private let wakeLoop: @Sendable () -> Void

    init(
        descriptor: Int32, scope: UInt32, name: String, maxOutputBytes: Int, spool: Spool?, pending: PendingBytes?, counters: ServiceCounters,
        wakeLoop: @escaping @Sendable () -> Void
    ) {
        self.descriptor = descriptor
        self.scope = scope
        self.name = name
        self.state = Mutex(ConnectionStateMachine(maxBacklogBytes: maxOutputBytes))
        self.spool = spool
        self.pending = pending
        self.counters = counters
        self.wakeLoop = wakeLoop
    }

    var wantsInput: Bool { state.withLock { $0.wantsInput } }
    var wantsWritable: Bool { state.withLock { $0.wantsWritable } }
    var isClosed: Bool { state.withLock { $0.isClosed } }
    /// Results dropped because the client went away before they were written (final once closed).
    var dropped: Int { state.withLock { $0.dropped } }
    var clientIsGone: Bool { state.withLock { $0.clientIsGone } }

    /// `count` jobs read from this client were taken in.
    func accepted(_ count: Int) {
        state.withLock { $0.accepted(count) }
    }

    /// The results keep their jobs' `--max-pending-bytes` charge until they are written: clients
    /// that stop reading hold the host's memory bound, not more.
    func receive(_ results: [JobResult<JobBytes, JobBytes>]) {
        // Every result here is of a job this client sent: its scope is the connection's. Checked
        // in debug builds (the tests'), where a result handed to the wrong client stops the host.
        assert(results.indices.allSatisfy { results[$0].tag.scope == scope },
               "\(name) (scope \(scope)) was handed results of scopes \(Set(results.indices.map { results[$0].tag.scope }))")
        HostMetrics.shared.answered(results)
        deliver(results.encodedLines(replayed: false), count: results.count, done: results.spoolSequences, charge: results.pendingCharge)
    }

    func answer(_ lines: [UInt8], count: Int, done: [UInt64]) {
        deliver(lines, count: count, done: done, charge: 0)
    }

    private func deliver(_ lines: [UInt8], count: Int, done: [UInt64], charge: Int) {
        spool?.markDone(done)
        SupervisorBoard.shared?.answered(count)
        let (action, released) = state.withLock { ($0.deliver(lines, count: count, charge: charge), $0.takeReleasedCharge()) }
        release(released)
        switch action {
        case .write(let bytes): write(bytes)
        case .queued: break
        case .orphaned: counters.orphaned(count)
        }
    }

    private func release(_ charge: Int) {
        if charge > 0 { pending?.answered(charge) }
    }

    /// The socket is writable: the input loop writes what waits, if it is its turn.
    func writable() {
        if let bytes = state.withLock({ $0.writable() }) { write(bytes) }
    }

    /// The client shut its side: true if the loop closes the connection now.
    func inputEnded() -> Bool {
        state.withLock { $0.inputEnded() }
    }

    /// The client is gone: true if the loop closes the connection now.
    func clientLeft() -> Bool {
        let (closes, released) = state.withLock { ($0.clientLeft(), $0.takeReleasedCharge()) }
        release(released)
        return closes
    }

    /// Writes `bytes` and whatever arrives meanwhile, as the one thread allowed to, until
    /// nothing is left or the socket is full.
    private func write(_ bytes: [UInt8]) {
        var bytes = bytes
        while true {
            var written = 0
            var failed = false
            bytes.withUnsafeBytes { raw in
                while written < raw.count {
                    switch Syscall.send(descriptor, UnsafeRawBufferPointer(rebasing: raw[written...])) {
                    case .success(let count): written += count
                    case .failure(.wouldBlock): return
                    case .failure: failed = true; return
                    }
                }
            }
            let (action, released) = state.withLock { ($0.wrote(unwritten: bytes[written...], failed: failed), $0.takeReleasedCharge()) }
            release(released)
            switch action {
            case .write(let more): bytes = more
            case .done: return
            case .resumeReading, .waitForWritable, .close:
                wakeLoop()
                return
            }
        }
    }
}
