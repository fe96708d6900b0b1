/// What a ``NATSConnection`` is doing, and what each event asks of it: the state machine its
/// Mutex guards. Pure: every method returns the action to take outside the lock.
struct NATSConnectionState {
    enum Phase: Equatable {
        /// A socket is up (from `connect`, or after a reconnect's handshake).
        case connected
        /// The socket was lost: writes wait in the reconnect buffer (up to its bound).
        case reconnecting
        case closed
    }

    /// A socket's writes: whoever finds nobody writing writes, and goes on with what others
    /// appended meanwhile, so that many threads' small publishes go out in few system calls.
    enum WriteAction: Equatable {
        case none
        case write(NATSSocket, [UInt8])
        /// The bytes were dropped: the reconnect buffer is full, or the connection closed.
        case dropped
    }

    enum PongAction: Equatable {
        case none
        /// A `flush()` waits for this PONG.
        case wake(UInt64)
    }

    private(set) var phase = Phase.connected
    private(set) var socket: NATSSocket?
    private var outgoing: [UInt8] = []
    private var isWriting = false
    /// PINGs sent and not yet answered, in order: 0 for the keep-alive's, or a waiter's number.
    private var pings: [UInt64] = []
    let reconnectBufferBytes: Int
    private(set) var droppedBytes = 0

    init(socket: NATSSocket, reconnectBufferBytes: Int) {
        self.socket = socket
        self.reconnectBufferBytes = reconnectBufferBytes
    }

    mutating func enqueue(_ bytes: [UInt8]) -> WriteAction {
        switch phase {
        case .closed:
            return .dropped
        case .reconnecting:
            guard outgoing.count + bytes.count <= reconnectBufferBytes else {
                droppedBytes += bytes.count
                return .dropped
            }
            outgoing.append(contentsOf: bytes)
            return .none
        case .connected:
            if isWriting {
                outgoing.append(contentsOf: bytes)
                return .none
            }
            guard let socket else { return .dropped }
            isWriting = true
            if outgoing.isEmpty { return .write(socket, bytes) }
            outgoing.append(contentsOf: bytes)
            return .write(socket, take())
        }
    }

    /// The writer wrote its bytes (or failed to): what to write next.
    mutating func wrote(succeeded: Bool) -> WriteAction {
        guard succeeded, phase == .connected, let socket, !outgoing.isEmpty else {
            isWriting = false
            return .none
        }
        return .write(socket, take())
    }

    private mutating func take() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &outgoing)
        outgoing.reserveCapacity(min(taken.capacity, 1 << 20))
        return taken
    }

    /// The socket broke: waiters for PONGs are released (their flush failed).
    mutating func lost() -> [UInt64] {
        guard phase == .connected else { return [] }
        phase = .reconnecting
        socket = nil
        isWriting = false
        defer { pings.removeAll() }
        return pings.filter { $0 != 0 }
    }

    /// A new socket's handshake is done: it writes the subscriptions (`prefix`) and then what
    /// waited in the reconnect buffer.
    mutating func reconnected(_ socket: NATSSocket, prefix: [UInt8]) -> WriteAction {
        guard phase == .reconnecting else { return .dropped }
        phase = .connected
        self.socket = socket
        isWriting = true
        return .write(socket, prefix + take())
    }

    /// Closed by us: every waiter is released; the socket to shut, if any.
    mutating func close() -> (NATSSocket?, [UInt64]) {
        let open = socket
        phase = .closed
        socket = nil
        outgoing = []
        defer { pings.removeAll() }
        return (open, pings.filter { $0 != 0 })
    }

    /// A PING goes out (the caller enqueues it); `waiter` 0 is the keep-alive's own.
    mutating func pinged(waiter: UInt64) {
        pings.append(waiter)
    }

    var unansweredPings: Int { pings.count }

    mutating func pong() -> PongAction {
        guard !pings.isEmpty else { return .none }
        let first = pings.removeFirst()
        return first == 0 ? .none : .wake(first)
    }
}
