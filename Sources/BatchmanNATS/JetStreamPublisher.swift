import Dispatch
import Glibc
import Synchronization

/// Publishes to JetStream without waiting for each acknowledgement: up to `window` messages
/// are out at once, each retried (same `Nats-Msg-Id`, so the stream stores it once) until
/// stored: on a 503 while a stream leader is elected, on a reply that never comes, at once
/// after a reconnect. Each message's completion is called once: stored, refused for good
/// (an error that retrying cannot fix), or the publisher closed.
///
/// Messages given the same `orderKey` are stored in the order they were published: one of
/// them is out at a time (pipelining them would let a later one be stored while an earlier one
/// waits for its retry, as when a stream's leader dies with the earlier one unanswered).
///
/// `publish` blocks while the window is full: the caller's backpressure.
public final class JetStreamPublisher: Sendable {
    public typealias Completion = @Sendable (Result<JetStream.PubAck, NATSError>) -> Void

    /// Whether a message may go out now, asked before every send.
    public enum Decision: Equatable, Sendable {
        case send
        /// Not now: asked again after the retry delay (the message, and any behind it in its
        /// order key, waits).
        case hold
        /// Never: it completes with `.closed`, unsent.
        case drop
    }

    private struct Entry {
        var subject: String
        var headers: NATSHeaders
        var payload: [UInt8]
        var completion: Completion
        /// Asked before each send.
        var decide: (@Sendable () -> Decision)?
        var token: UInt64 = 0
        /// Monotonic nanoseconds: when the reply is given up on, or when to send again.
        var deadline: UInt64 = 0
        var isWaitingToRetry = false
        var attempts = 0
        /// Monotonic nanoseconds of the first send (0: not sent yet).
        var firstSentAt: UInt64 = 0
        var orderKey: String?
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var nextId: UInt64 = 1
        var isClosed = false
        var retries = 0
        /// Per order key, the messages not yet stored, oldest (the one out) first.
        var chains: [String: [UInt64]] = [:]

        /// Takes `id` out; returns it and the next of its chain to send, if any.
        mutating func remove(_ id: UInt64) -> (Entry, UInt64?)? {
            guard let entry = entries.removeValue(forKey: id) else { return nil }
            guard let key = entry.orderKey, var chain = chains[key] else { return (entry, nil) }
            chain.removeAll { $0 == id }
            chains[key] = chain.isEmpty ? nil : chain
            return (entry, chain.first)
        }
    }

    public let jetStream: JetStream
    private let state = Mutex(State())
    private let permits: DispatchSemaphore
    private let ackTimeout: UInt64
    private let retryDelay: UInt64

    public init(_ jetStream: JetStream, window: Int = 4096, ackTimeout: Duration = .seconds(4), retryDelay: Duration = .milliseconds(200)) {
        self.jetStream = jetStream
        self.permits = DispatchSemaphore(value: window)
        self.ackTimeout = UInt64(ackTimeout.milliseconds) * 1_000_000
        self.retryDelay = UInt64(retryDelay.milliseconds) * 1_000_000
        NATSThread.start(name: "batchman-nats-publisher") { [weak self] in
            while let self, self.tick() { NATSThread.sleep(.milliseconds(50)) }
        }
        jetStream.connection.onReconnect { [weak self] in self?.retryAll() }
    }

    /// Messages sent again so far (each retry counts).
    public var retries: Int { state.withLock { $0.retries } }

    /// Messages not yet stored.
    public var outstanding: Int { state.withLock { $0.entries.count } }

    /// Messages sent and not yet stored, and how long ago the oldest of them was first sent
    /// (nil if none): what says a stream has stopped storing (no quorum, no leader) when every
    /// retry is only a timeout.
    public func unstored(now: UInt64 = JetStreamPublisher.now()) -> (count: Int, oldestNanoseconds: UInt64?) {
        state.withLock { state in
            var count = 0
            var oldest: UInt64?
            for entry in state.entries.values where entry.firstSentAt != 0 {
                count += 1
                oldest = min(oldest ?? entry.firstSentAt, entry.firstSentAt)
            }
            return (count, oldest.map { now > $0 ? now - $0 : 0 })
        }
    }

    /// Publishes `payload` on `subject` with `Nats-Msg-Id: msgId` (plus `extraHeaders`), and
    /// calls `completion` once. `decide` is asked before every send, retries included: `.hold`
    /// waits (a result whose lease is being renewed), `.drop` completes with `.closed` (a result
    /// whose job is no longer this host's to answer).
    public func publish(_ subject: String, msgId: String, extraHeaders: [(name: String, value: String)] = [], payload: [UInt8],
                        orderKey: String? = nil, decide: (@Sendable () -> Decision)? = nil, completion: @escaping Completion) {
        permits.wait()
        let headers = NATSHeaders(fields: [("Nats-Msg-Id", msgId)] + extraHeaders)
        let (id, sendNow): (UInt64?, Bool) = state.withLock { state in
            guard !state.isClosed else { return (nil, false) }
            let id = state.nextId
            state.nextId += 1
            state.entries[id] = Entry(subject: subject, headers: headers, payload: payload, completion: completion, decide: decide,
                                      orderKey: orderKey)
            guard let orderKey else { return (id, true) }
            state.chains[orderKey, default: []].append(id)
            return (id, state.chains[orderKey]!.count == 1)
        }
        guard let id else {
            permits.signal()
            completion(.failure(.closed))
            return
        }
        if sendNow { send(id) }
    }

    /// `id` is done with: stored, refused for good, or not wanted. The next of its chain goes.
    private func complete(_ id: UInt64, _ outcome: Result<JetStream.PubAck, NATSError>) {
        guard let (entry, next) = state.withLock({ $0.remove(id) }) else { return }
        permits.signal()
        entry.completion(outcome)
        if let next { send(next) }
    }

    /// Stops retrying: every message not yet stored completes with `.closed`.
    public func close() {
        let left = state.withLock { state in
            state.isClosed = true
            defer {
                state.entries.removeAll()
                state.chains.removeAll()
            }
            return Array(state.entries.values)
        }
        for entry in left {
            jetStream.connection.cancelReply(entry.token)
            permits.signal()
            entry.completion(.failure(.closed))
        }
    }

    private func send(_ id: UInt64) {
        guard let entry = state.withLock({ $0.entries[id] }) else { return }
        switch entry.decide?() ?? .send {
        case .send:
            break
        case .hold:
            retryLater(id)
            return
        case .drop:
            complete(id, .failure(.closed))
            return
        }
        let (reply, token) = jetStream.connection.newReplySubject { [weak self] in self?.replied(id, $0) }
        let now = Self.now()
        let current = state.withLock { state -> Bool in
            guard state.entries[id] != nil else { return false }
            state.entries[id]!.token = token
            state.entries[id]!.deadline = now + ackTimeout
            state.entries[id]!.isWaitingToRetry = false
            state.entries[id]!.attempts += 1
            if state.entries[id]!.firstSentAt == 0 { state.entries[id]!.firstSentAt = now }
            return true
        }
        guard current else {
            jetStream.connection.cancelReply(token)
            return
        }
        jetStream.connection.publish(entry.subject, replyTo: reply, headers: entry.headers, payload: entry.payload)
    }

    private func replied(_ id: UInt64, _ reply: NATSMessage) {
        let outcome: Result<JetStream.PubAck, NATSError>
        do throws(NATSError) {
            outcome = .success(try JetStream.pubAck(reply, subject: state.withLock { $0.entries[id]?.subject } ?? ""))
        } catch {
            outcome = .failure(error)
        }
        if case .failure(let error) = outcome, error.isTransient {
            retryLater(id)
            return
        }
        complete(id, outcome)
    }

    /// Sends `id` again after the retry delay (the timer thread does).
    private func retryLater(_ id: UInt64) {
        let later = Self.now() + retryDelay
        state.withLock { state in
            guard state.entries[id] != nil else { return }
            state.entries[id]!.deadline = later
            state.entries[id]!.isWaitingToRetry = true
        }
    }

    /// Resends what waited long enough; false once closed.
    private func tick() -> Bool {
        let now = Self.now()
        let (due, isClosed) = state.withLock { state -> ([(UInt64, UInt64, Bool)], Bool) in
            let due = state.entries.filter { $0.value.deadline != 0 && $0.value.deadline <= now }.map { ($0.key, $0.value.token, $0.value.isWaitingToRetry) }
            state.retries += due.count
            return (due, state.isClosed)
        }
        for (id, token, _) in due.sorted(by: { $0.0 < $1.0 }) {
            jetStream.connection.cancelReply(token)
            send(id)
        }
        return !isClosed
    }

    /// After a reconnect, replies to what was sent before may never come: send it again. (Only
    /// what was sent: a message waiting behind another of its order key waits on.)
    private func retryAll() {
        state.withLock { state in
            for (id, entry) in state.entries where entry.attempts > 0 { state.entries[id]!.deadline = 1 }
        }
    }

    public static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
