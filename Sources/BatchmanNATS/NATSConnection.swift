import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// A connection to a NATS server, made again to the next server of the list whenever it is
/// lost: subscriptions are renewed, writes made meanwhile wait in a bounded buffer. One thread
/// of its own reads, answers PINGs, sends the keep-alive's and hands each message to its
/// subscription's handler (on that thread: handlers must be quick).
///
/// Thread-safe: publish, subscribe and request from any thread. Blocking calls (``request``,
/// ``flush``) must not run on Swift's cooperative pool.
public final class NATSConnection: Sendable {
    public struct Options: Sendable {
        public var servers: [NATSServerURL]
        /// Shown by the server's monitoring (`connz`).
        public var name = "batchman"
        /// Credentials for every server whose URL has none.
        public var user: String?
        public var password: String?
        public var token: String?
        public var connectTimeout: Duration = .seconds(2)
        /// Between two rounds over the server list.
        public var reconnectWait: Duration = .milliseconds(200)
        /// Quiet this long, the client PINGs; `maxPingsOut` unanswered, the connection is dead.
        public var pingInterval: Duration = .seconds(2)
        public var maxPingsOut = 3
        /// Writes kept while reconnecting; more are dropped (a request then times out).
        public var reconnectBufferBytes = 8 << 20
        /// Where the connection says it lost or made a connection.
        public var log: (@Sendable (String) -> Void)?

        public init(servers: [NATSServerURL]) { self.servers = servers }
    }

    public let options: Options
    private let state: Mutex<NATSConnectionState>
    private let registry = Mutex(Registry())
    /// `flush()` callers waiting for their PONG, by number.
    private let pongWaiters = Mutex([UInt64: DispatchSemaphore]())
    private let reconnectHandlers = Mutex([@Sendable () -> Void]())
    /// `_INBOX.<random>.`: replies to this connection's requests come on it plus a number.
    public let inboxPrefix: String
    private let closedEvent = DispatchSemaphore(value: 0)

    /// Subscriptions and outstanding requests.
    private struct Registry {
        var subscriptions: [UInt64: (subject: String, handler: @Sendable (NATSMessage) -> Void)] = [:]
        var nextSid: UInt64 = 1
        var replies: [UInt64: @Sendable (NATSMessage) -> Void] = [:]
        var nextToken: UInt64 = 1
        var inboxSid: UInt64?
        var servers: [NATSServerURL] = []
        var current = 0
        var serverInfo = ServerInfo()
        var nextWaiter: UInt64 = 1
    }

    /// What INFO told of the server.
    public struct ServerInfo: Decodable, Sendable {
        public var server_id: String?
        public var server_name: String?
        public var version: String?
        public var max_payload: Int?
        public var headers: Bool?
        public var jetstream: Bool?
        public var connect_urls: [String]?
        public var auth_required: Bool?
    }

    /// Connects to the first server of the list that answers, or throws what each said.
    public static func connect(_ options: Options) throws(NATSError) -> NATSConnection {
        guard !options.servers.isEmpty else { throw NATSError.usage("no NATS server given") }
        var reasons: [String] = []
        for (index, server) in options.servers.enumerated() {
            switch handshake(server, options: options) {
            case .success(let (socket, parser, info)):
                let connection = NATSConnection(options: options, socket: socket, server: index, info: info)
                connection.startReading(parser)
                return connection
            case .failure(.authorization(let why)):
                throw NATSError.authorization(why)
            case .failure(let error):
                reasons.append(error.description)
            }
        }
        throw NATSError.cannotConnect("cannot connect to NATS: " + reasons.joined(separator: "; ")
                                      + " (is nats-server running there? batchman nats setup --help shows a server list's form)")
    }

    private init(options: Options, socket: NATSSocket, server: Int, info: ServerInfo) {
        self.options = options
        self.state = Mutex(NATSConnectionState(socket: socket, reconnectBufferBytes: options.reconnectBufferBytes))
        var random = SystemRandomNumberGenerator()
        self.inboxPrefix = "_INBOX.\(String(random.next() as UInt64, radix: 36))\(String(random.next() as UInt32, radix: 36))."
        registry.withLock {
            $0.servers = options.servers
            $0.current = server
            $0.serverInfo = info
            Self.learn(info, into: &$0, template: options.servers[server])
        }
    }

    /// What the server told in its last INFO.
    public var serverInfo: ServerInfo { registry.withLock { $0.serverInfo } }

    /// The server connected to now (nil while reconnecting).
    public var connectedServer: NATSServerURL? {
        guard state.withLock({ $0.phase }) == .connected else { return nil }
        return registry.withLock { $0.servers[$0.current] }
    }

    public var isClosed: Bool { state.withLock { $0.phase == .closed } }

    /// Called (on the reader thread) after each reconnect, once subscriptions are renewed.
    public func onReconnect(_ handler: @escaping @Sendable () -> Void) {
        reconnectHandlers.withLock { $0.append(handler) }
    }

    // MARK: - Publishing and subscribing

    public func publish(_ subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]) {
        send(Self.encodePublish(subject, replyTo: replyTo, headers: headers, payload: payload))
    }

    /// A PUB or HPUB as the server takes it.
    static func encodePublish(_ subject: String, replyTo: String?, headers: NATSHeaders?, payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        let reply = replyTo.map { " " + $0 } ?? ""
        if let headers {
            let block = headers.encoded
            bytes.reserveCapacity(block.count + payload.count + subject.utf8.count + 48)
            bytes.append(contentsOf: "HPUB \(subject)\(reply) \(block.count) \(block.count + payload.count)\r\n".utf8)
            bytes.append(contentsOf: block)
        } else {
            bytes.reserveCapacity(payload.count + subject.utf8.count + 32)
            bytes.append(contentsOf: "PUB \(subject)\(reply) \(payload.count)\r\n".utf8)
        }
        bytes.append(contentsOf: payload)
        bytes.append(13)
        bytes.append(10)
        return bytes
    }

    /// Subscribes `handler` (called on the reader thread) to `subject`; returns its id.
    @discardableResult
    public func subscribe(_ subject: String, handler: @escaping @Sendable (NATSMessage) -> Void) -> UInt64 {
        let sid = registry.withLock { registry in
            let sid = registry.nextSid
            registry.nextSid += 1
            registry.subscriptions[sid] = (subject, handler)
            return sid
        }
        send(Array("SUB \(subject) \(sid)\r\n".utf8))
        return sid
    }

    public func unsubscribe(_ sid: UInt64) {
        guard registry.withLock({ $0.subscriptions.removeValue(forKey: sid) }) != nil else { return }
        send(Array("UNSUB \(sid)\r\n".utf8))
    }

    // MARK: - Requests

    /// A fresh reply subject on this connection's inbox, with the token that names it. Its
    /// first message goes to `handler` (on the reader thread).
    public func newReplySubject(_ handler: @escaping @Sendable (NATSMessage) -> Void) -> (subject: String, token: UInt64) {
        let (token, inboxSid) = registry.withLock { registry -> (UInt64, UInt64?) in
            let token = registry.nextToken
            registry.nextToken += 1
            registry.replies[token] = handler
            guard registry.inboxSid == nil else { return (token, nil) }
            let sid = registry.nextSid
            registry.nextSid += 1
            registry.inboxSid = sid
            registry.subscriptions[sid] = (inboxPrefix + "*", { [weak self] in self?.routeReply($0) })
            return (token, sid)
        }
        if let inboxSid { send(Array("SUB \(inboxPrefix)* \(inboxSid)\r\n".utf8)) }
        return (inboxPrefix + String(token), token)
    }

    /// Sends a request whose reply (only the first) goes to `onReply`, on the reader thread.
    @discardableResult
    public func request(_ subject: String, headers: NATSHeaders? = nil, payload: [UInt8],
                        onReply: @escaping @Sendable (NATSMessage) -> Void) -> UInt64 {
        let (reply, token) = newReplySubject(onReply)
        publish(subject, replyTo: reply, headers: headers, payload: payload)
        return token
    }

    /// Forgets a reply subject: a request that timed out.
    public func cancelReply(_ token: UInt64) {
        _ = registry.withLock { $0.replies.removeValue(forKey: token) }
    }

    private func routeReply(_ message: NATSMessage) {
        guard message.subject.hasPrefix(inboxPrefix), let token = UInt64(message.subject.dropFirst(inboxPrefix.count)) else { return }
        let handler = registry.withLock { $0.replies.removeValue(forKey: token) }
        handler?(message)
    }

    /// Sends a request and waits for its reply, at most `timeout`.
    /// - Throws: `.timeout`, `.noResponders` (status 503), `.closed`.
    public func request(_ subject: String, headers: NATSHeaders? = nil, payload: [UInt8], timeout: Duration) throws(NATSError) -> NATSMessage {
        guard !isClosed else { throw NATSError.closed }
        let reply = Mutex<NATSMessage?>(nil)
        let arrived = DispatchSemaphore(value: 0)
        let token = request(subject, headers: headers, payload: payload) { message in
            reply.withLock { $0 = message }
            arrived.signal()
        }
        guard arrived.wait(timeout: .now() + timeout.dispatchInterval) == .success, let message = reply.withLock({ $0 }) else {
            cancelReply(token)
            throw NATSError.timeout("no reply to \(subject) within \(timeout)")
        }
        if message.status == 503 { throw NATSError.noResponders("nothing answers \(subject) (503 no responders)") }
        return message
    }

    /// Waits until the server has processed everything written before (a PING's PONG).
    public func flush(timeout: Duration = .seconds(5)) throws(NATSError) {
        let waiter = DispatchSemaphore(value: 0)
        let number = registry.withLock { registry in
            defer { registry.nextWaiter += 1 }
            return registry.nextWaiter
        }
        pongWaiters.withLock { $0[number] = waiter }
        let action = state.withLock { state -> NATSConnectionState.WriteAction in
            guard state.phase == .connected else { return .dropped }
            state.pinged(waiter: number)
            return state.enqueue(Array("PING\r\n".utf8))
        }
        defer { _ = pongWaiters.withLock { $0.removeValue(forKey: number) } }
        guard action != .dropped else { throw NATSError.timeout("not connected to NATS") }
        perform(action)
        guard waiter.wait(timeout: .now() + timeout.dispatchInterval) == .success, pongWaiters.withLock({ $0[number] != nil }) else {
            throw NATSError.timeout("NATS did not answer a PING within \(timeout)")
        }
    }

    /// Closes the connection; requests waiting fail, the reader thread ends.
    public func close() {
        let (socket, waiters) = state.withLock { $0.close() }
        release(waiters, succeeded: false)
        socket?.shutdown()
    }

    // MARK: - Writing

    private func send(_ bytes: [UInt8]) {
        perform(state.withLock { $0.enqueue(bytes) })
    }

    private func perform(_ action: NATSConnectionState.WriteAction) {
        var action = action
        while case .write(let socket, let bytes) = action {
            let succeeded = socket.writeAll(bytes)
            if !succeeded { socket.shutdown() }  // the reader sees it and reconnects
            action = state.withLock { $0.wrote(succeeded: succeeded) }
        }
    }

    private func release(_ waiters: [UInt64], succeeded: Bool) {
        let semaphores = pongWaiters.withLock { table in
            waiters.compactMap { number in succeeded ? table[number] : table.removeValue(forKey: number) }
        }
        for semaphore in semaphores { semaphore.signal() }
    }

    // MARK: - Reading, keep-alive and reconnecting

    private func startReading(_ parser: NATSParser) {
        let thread = ReaderThread(connection: self, parser: parser)
        NATSThread.start(name: "batchman-nats") { thread.run() }
    }

    private final class ReaderThread: @unchecked Sendable {
        // @unchecked: the parser is used only by the thread this object is handed to.
        let connection: NATSConnection
        var parser: NATSParser
        init(connection: NATSConnection, parser: NATSParser) {
            self.connection = connection
            self.parser = parser
        }
        func run() { connection.readLoop(&parser) }
    }

    private func readLoop(_ parser: inout NATSParser) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            guard let socket = state.withLock({ $0.socket }) else {
                guard reconnect(&parser) else { break }
                continue
            }
            let outcome = buffer.withUnsafeMutableBytes { socket.read(into: $0) }
            var why: String?
            switch outcome {
            case .bytes(let count):
                if let error = Self.feed(&parser, buffer, count, handle) { why = "the server sent what is not NATS: \(error)" }
            case .idle:
                let action = state.withLock { state -> NATSConnectionState.WriteAction in
                    guard state.unansweredPings < options.maxPingsOut else { return .dropped }
                    state.pinged(waiter: 0)
                    return state.enqueue(Array("PING\r\n".utf8))
                }
                if action == .dropped { why = "no PONG to \(options.maxPingsOut) PINGs" } else { perform(action) }
            case .closed:
                why = "the server closed the connection"
            case .failed(let code):
                why = String(cString: strerror(code))
            }
            guard let why else { continue }
            let (lostWaiters, isClosed) = state.withLock { state in (state.lost(), state.phase == .closed) }
            release(lostWaiters, succeeded: false)
            socket.close()
            if isClosed { break }
            let server = registry.withLock { $0.servers[$0.current] }
            options.log?("nats: lost the connection to \(server) (\(why)); reconnecting")
        }
        closedEvent.signal()
    }

    private func handle(_ op: NATSServerOp) {
        switch op {
        case .message(let message):
            let handler = registry.withLock { $0.subscriptions[message.sid]?.handler }
            handler?(message)
        case .ping:
            send(Array("PONG\r\n".utf8))
        case .pong:
            if case .wake(let number) = state.withLock({ $0.pong() }) { release([number], succeeded: true) }
        case .info(let json):
            if let info = try? JSONDecoder().decode(ServerInfo.self, from: Data(json)) {
                registry.withLock { registry in
                    registry.serverInfo = info
                    Self.learn(info, into: &registry, template: registry.servers[registry.current])
                }
            }
        case .ok:
            break
        case .error(let text):
            options.log?("nats: the server says: \(text)")
        }
    }

    /// Adds the cluster's other servers that INFO names, with the credentials of `template`.
    private static func learn(_ info: ServerInfo, into registry: inout Registry, template: NATSServerURL) {
        for text in info.connect_urls ?? [] {
            guard var url = try? NATSServerURL.parse(text), url.host.hasPrefix("127.") || url.host == "::1" || !template.host.hasPrefix("127.")
            else { continue }
            url.user = template.user
            url.password = template.password
            url.token = template.token
            if !registry.servers.contains(where: { $0.host == url.host && $0.port == url.port }) { registry.servers.append(url) }
        }
    }

    /// Tries the servers in turn, from the one after the lost one, until one takes us or the
    /// connection is closed; false if closed.
    private func reconnect(_ parser: inout NATSParser) -> Bool {
        var attempt = 0
        while state.withLock({ $0.phase }) == .reconnecting {
            let (servers, current) = registry.withLock { ($0.servers, $0.current) }
            let index = (current + 1 + attempt) % servers.count
            attempt += 1
            if attempt % servers.count == 0 { NATSThread.sleep(options.reconnectWait) }
            guard case .success(let (socket, fresh, info)) = Self.handshake(servers[index], options: options) else { continue }
            let prefix = registry.withLock { registry -> [UInt8] in
                registry.current = index
                registry.serverInfo = info
                Self.learn(info, into: &registry, template: servers[index])
                return registry.subscriptions.sorted { $0.key < $1.key }.flatMap { Array("SUB \($0.value.subject) \($0.key)\r\n".utf8) }
            }
            let action = state.withLock { $0.reconnected(socket, prefix: prefix) }
            guard action != .dropped else {
                socket.close()
                return false
            }
            parser = fresh
            options.log?("nats: reconnected to \(servers[index])")
            perform(action)
            for handler in reconnectHandlers.withLock({ $0 }) { handler() }
            return true
        }
        return false
    }

    /// Connects to `server`, reads its INFO, sends CONNECT and waits for the PONG of a PING.
    private static func handshake(_ server: NATSServerURL, options: Options) -> Result<(NATSSocket, NATSParser, ServerInfo), NATSError> {
        let timeout = options.connectTimeout.milliseconds
        let socket: NATSSocket
        switch NATSSocket.connect(to: server, timeoutMilliseconds: Int32(timeout), readTimeoutMilliseconds: timeout, writeTimeoutMilliseconds: 10_000) {
        case .success(let connected): socket = connected
        case .failure(let error): return .failure(error)
        }
        var parser = NATSParser()
        var info: ServerInfo?
        var ponged = false
        var refused: String?
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        func readOps() -> Bool {
            guard case .bytes(let count) = buffer.withUnsafeMutableBytes({ socket.read(into: $0) }) else { return false }
            let failure = feed(&parser, buffer, count) { op in
                switch op {
                case .info(let json): info = try? JSONDecoder().decode(ServerInfo.self, from: Data(json))
                case .pong: ponged = true
                case .error(let text): refused = text
                default: break
                }
            }
            if let failure { refused = "not a NATS server: \(failure)" }
            return failure == nil
        }
        while info == nil, refused == nil { guard readOps() else { break } }
        guard let info else {
            socket.close()
            return .failure(.cannotConnect("\(server): \(refused ?? "no INFO from the server")"))
        }
        guard info.headers ?? false else {
            socket.close()
            return .failure(.cannotConnect("\(server): the server does not support headers (NATS 2.2 or later is needed)"))
        }
        var connect: [String: String] = ["lang": "\"swift\"", "version": "\"0.1.0\"", "protocol": "1", "verbose": "false", "pedantic": "false",
                                         "headers": "true", "no_responders": "true", "name": jsonString(options.name)]
        if let user = server.user ?? options.user { connect["user"] = jsonString(user) }
        if let password = server.password ?? options.password { connect["pass"] = jsonString(password) }
        if let token = server.token ?? options.token { connect["auth_token"] = jsonString(token) }
        let body = connect.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",")
        guard socket.writeAll(Array("CONNECT {\(body)}\r\nPING\r\n".utf8)) else {
            socket.close()
            return .failure(.cannotConnect("\(server): the connection closed during the handshake"))
        }
        while !ponged, refused == nil { guard readOps() else { break } }
        guard ponged, refused == nil else {
            socket.close()
            let why = refused ?? "no answer to CONNECT"
            if why.lowercased().contains("authorization") || why.lowercased().contains("authentication") {
                return .failure(.authorization("\(server) refused the credentials: \(why) (give user:password@ or token@ in the URL)"))
            }
            return .failure(.cannotConnect("\(server): \(why)"))
        }
        // From here the read timeout is the keep-alive's tick.
        let ping = options.pingInterval.milliseconds
        var time = timeval(tv_sec: ping / 1000, tv_usec: (ping % 1000) * 1000)
        setsockopt(socket.descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        return .success((socket, parser, info))
    }

    /// Feeds `count` bytes of `buffer` to `parser`; the protocol error, if any.
    private static func feed(_ parser: inout NATSParser, _ buffer: [UInt8], _ count: Int, _ handle: (NATSServerOp) -> Void) -> NATSProtocolError? {
        buffer.withUnsafeBytes { raw in
            do throws(NATSProtocolError) {
                try parser.feed(UnsafeRawBufferPointer(rebasing: raw[..<count]), handle)
                return nil
            } catch {
                return error
            }
        }
    }

    /// `text` as a JSON string.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case let control where control.value < 0x20:
                let hex = String(control.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension Duration {
    var dispatchInterval: DispatchTimeInterval {
        .nanoseconds(Int(components.seconds) * 1_000_000_000 + Int(components.attoseconds / 1_000_000_000))
    }

    var milliseconds: Int { Int(components.seconds) * 1000 + Int(components.attoseconds / 1_000_000_000_000_000) }
}
