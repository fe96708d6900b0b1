import Dispatch
import Synchronization

/// `--max-pending-bytes`: the memory that accepted jobs without a result may take, bounded.
/// The reader does not read on at the bound, so a slow plugin never has the whole
/// input loaded ahead of it, whatever `maxPending` says (none, by default).
///
/// A job counts its line's bytes (key, id and payload) plus ``bookkeepingBytes`` for what the
/// host keeps per job besides (its slot, its place in a batch, its result handler): measured,
/// small jobs cost about ten times their bytes, and a bound on bytes alone would not bound them.
final class PendingBytes: Sendable {
    /// What the host keeps per accepted job besides its bytes, as counted against the bound.
    static let bookkeepingBytes = 512
    static let defaultLimit = 64 << 20

    /// The decisions, with no thread in sight.
    struct StateMachine: Equatable {
        enum Phase: Equatable {
            case flowing
            /// The reader waits for results to free room.
            case readerWaiting
            /// The run is stopping: nobody waits any more.
            case closed
        }

        enum WaitAction: Equatable {
            case proceed
            /// Block until woken; `firstPause`: the first time in this run, to say so.
            case wait(firstPause: Bool)
        }

        let limit: Int
        private(set) var held = 0
        private(set) var phase = Phase.flowing
        private(set) var pauses = 0

        init(limit: Int) { self.limit = limit }

        mutating func accepted(_ bytes: Int) { held += bytes }

        /// The reader wants to read on. A lone job larger than the bound still goes: the bound
        /// is for what waits, and nothing waiting means there is room.
        /// Asked again while waiting (the loop polls on), it says wait again, as one pause.
        mutating func waitForRoom() -> WaitAction {
            switch phase {
            case .closed:
                return .proceed
            case .flowing, .readerWaiting:
                guard held >= limit else {
                    phase = .flowing
                    return .proceed
                }
                if phase == .readerWaiting { return .wait(firstPause: false) }
                phase = .readerWaiting
                pauses += 1
                return .wait(firstPause: pauses == 1)
            }
        }

        /// Results of `bytes` were handed to the writer; true: wake the reader.
        mutating func answered(_ bytes: Int) -> Bool {
            held -= bytes
            guard phase == .readerWaiting, held < limit else { return false }
            phase = .flowing
            return true
        }

        /// True: wake the reader.
        mutating func close() -> Bool {
            defer { phase = .closed }
            return phase == .readerWaiting
        }
    }

    private let state: Mutex<StateMachine>
    /// Called once there is room again (the input loop waits for it in its poll).
    private let waker = Mutex<Callback?>(nil)

    init(limit: Int) {
        state = Mutex(StateMachine(limit: limit))
    }

    var limit: Int { state.withLock { $0.limit } }

    /// The bytes a job counts.
    static func charge(key: String, id: String, payloadBytes: Int) -> Int {
        key.utf8.count + id.utf8.count + payloadBytes + bookkeepingBytes
    }

    func accepted(_ bytes: Int) {
        state.withLock { $0.accepted(bytes) }
    }

    /// True while there is room. Otherwise false, and `onRoom` is called once there is (or the
    /// run stops); the reader does not block on it: the input loop goes on writing to clients,
    /// whose unwritten results hold part of the bound. `onFirstPause` is told at the first pause.
    func hasRoom(onFirstPause: () -> Void, onRoom: @escaping @Sendable () -> Void) -> Bool {
        // The waker is set before the state says "waiting": an answer in between finds it.
        waker.withLock { $0 = Callback(onRoom) }
        switch state.withLock({ $0.waitForRoom() }) {
        case .proceed:
            return true
        case .wait(let firstPause):
            if firstPause { onFirstPause() }
            return false
        }
    }

    func answered(_ bytes: Int) {
        if state.withLock({ $0.answered(bytes) }) { waker.withLock { $0 }?.call() }
    }

    /// The run stops: a waiting reader goes on, and nobody waits any more.
    func close() {
        if state.withLock({ $0.close() }) { waker.withLock { $0 }?.call() }
    }
}
