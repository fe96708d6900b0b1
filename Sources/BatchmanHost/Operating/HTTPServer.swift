import Batchman
import Glibc
import Synchronization

/// `--http HOST:PORT`: a small HTTP/1.1 server for operators, on a thread of its own, never on
/// the path of a job. GET (and HEAD) only; one request per connection (`Connection: close`);
/// at most ``maxConnections`` clients at once, each with ``requestTimeout`` to send a head of
/// at most 8 KiB. A client that breaks any of these is answered with an error, or dropped.
final class HTTPServer: @unchecked Sendable {
    // @unchecked: the clients and the listener are touched only by the server's thread; other
    // threads call stop(), which uses the atomic and the wake pipe only.
    struct Response {
        var status: Int
        var contentType = "text/plain; charset=utf-8"
        var body: String
        var headers: [(String, String)] = []
    }

    typealias Handler = @Sendable (HTTPRequestHead) -> Response

    static let maxConnections = 32
    static let requestTimeoutNanoseconds: UInt64 = 5_000_000_000

    /// The address bound (port 0 becomes the port the kernel picked).
    let address: ServiceAddress
    private let listener: Int32
    private let handler: Handler
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let isStopped = Atomic<Bool>(false)
    private let stopped = OneTimeEvent()

    private final class Client {
        let descriptor: Int32
        let deadline: UInt64
        var received: [UInt8] = []
        var unsent: [UInt8] = []
        init(descriptor: Int32, deadline: UInt64) {
            self.descriptor = descriptor
            self.deadline = deadline
        }
    }

    private var clients: [Client] = []

    /// Binds `address` (`tcp:` only) and starts serving.
    /// - Throws: ``HostError`` (`.runtime`) saying why it cannot listen.
    init(address requested: ServiceAddress, handler: @escaping Handler) throws(HostError) {
        let descriptor: Int32
        switch Syscall.streamSocket(family: requested.family, nonBlocking: true) {
        case .success(let opened): descriptor = opened
        case .failure(let error): throw HostError(.runtime, "--http \(Self.hostPort(requested)): cannot make a socket: \(error)")
        }
        Syscall.setOption(descriptor, level: SOL_SOCKET, SO_REUSEADDR, 1)
        if case .failure(let error) = Syscall.bind(descriptor, to: requested.socketAddress).flatMap({ Syscall.listen(descriptor, backlog: 64) }) {
            Glibc.close(descriptor)
            throw HostError(.runtime, "--http \(Self.hostPort(requested)): cannot listen: \(error)")
        }
        var bound = requested
        if case .tcp(let host, _) = requested, let local = try? Syscall.localAddress(of: descriptor).get() { bound = .tcp(host: host, port: local.port) }
        guard case .success(let ends) = Syscall.pipe() else { preconditionFailure("cannot create the HTTP server's wake-up pipe: \(Errno.current)") }
        address = bound
        listener = descriptor
        self.handler = handler
        wakeRead = ends.read
        wakeWrite = ends.write
        DedicatedThread.start(name: "batchman-http") { [self] in serve() }
    }

    /// "127.0.0.1:9464", as `--http` is written.
    static func hostPort(_ address: ServiceAddress) -> String {
        String(address.description.dropFirst("tcp:".count))
    }

    /// Stops serving and waits for the server's thread to close everything.
    func stop() async {
        requestStop()
        await stopped.wait()
    }

    /// Stops serving, without waiting (a run that failed to start).
    func requestStop() {
        guard !isStopped.exchange(true, ordering: .relaxed) else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    private func serve() {
        while !isStopped.load(ordering: .relaxed) {
            var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: listener, events: clients.count < Self.maxConnections ? Int16(POLLIN) : 0, revents: 0)]
            let polled = clients
            for client in polled { descriptors.append(pollfd(fd: client.descriptor, events: Int16(client.unsent.isEmpty ? POLLIN : POLLOUT), revents: 0)) }
            let nearest = polled.map(\.deadline).min()
            _ = Syscall.poll(&descriptors, milliseconds: Syscall.pollMilliseconds(until: nearest))
            if descriptors[0].revents != 0 { break }
            if descriptors[1].revents != 0 { accept() }
            let now = Syscall.monotonicNanoseconds()
            var finished: Set<Int32> = []
            for (offset, client) in polled.enumerated() {
                let events = descriptors[offset + 2].revents
                if events & Int16(POLLIN | POLLHUP | POLLERR) != 0, client.unsent.isEmpty, !read(client) { finished.insert(client.descriptor) }
                if events & Int16(POLLOUT) != 0, !send(client) { finished.insert(client.descriptor) }
                if now >= client.deadline, !finished.contains(client.descriptor) {
                    if client.unsent.isEmpty {
                        respond(client, Response(status: 408, body: "request timeout\n"))
                        _ = send(client)
                    }
                    finished.insert(client.descriptor)
                }
            }
            clients.removeAll { client in
                guard finished.contains(client.descriptor) else { return false }
                Glibc.close(client.descriptor)
                return true
            }
        }
        for client in clients { Glibc.close(client.descriptor) }
        clients = []
        Glibc.close(listener)
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
        stopped.happen()
    }

    private func accept() {
        while clients.count < Self.maxConnections, case .success(let descriptor) = Syscall.accept(listener) {
            clients.append(Client(descriptor: descriptor, deadline: Syscall.monotonicNanoseconds() + Self.requestTimeoutNanoseconds))
        }
    }

    /// Reads what the client sent and answers once its head is whole; false when done with it.
    private func read(_ client: Client) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count: Int
        switch buffer.withUnsafeMutableBytes({ Syscall.read(client.descriptor, into: $0) }) {
        case .success(let read) where read > 0: count = read
        case .failure(.wouldBlock): return true
        default: return false  // the client closed its side, or its socket failed
        }
        client.received += buffer[..<count]
        switch HTTPRequestHead.parse(client.received[...]) {
        case .incomplete:
            return true
        case .malformed(let why):
            respond(client, Response(status: client.received.count > HTTPRequestHead.maxBytes ? 431 : 400, body: "\(why)\n"))
        case .request(let head):
            switch head.method {
            case "GET", "HEAD":
                var response = handler(head)
                if head.method == "HEAD" { response.headers.append(("Content-Length", "\(response.body.utf8.count)")) }
                respond(client, response, withBody: head.method == "GET")
            default:
                respond(client, Response(status: 405, body: "only GET and HEAD are served\n", headers: [("Allow", "GET, HEAD")]))
            }
        }
        return send(client)
    }

    private func respond(_ client: Client, _ response: Response, withBody: Bool = true) {
        let body = Array(response.body.utf8)
        var head = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
        head += "Content-Type: \(response.contentType)\r\n"
        if !response.headers.contains(where: { $0.0 == "Content-Length" }) { head += "Content-Length: \(body.count)\r\n" }
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Connection: close\r\n\r\n"
        client.unsent = Array(head.utf8) + (withBody ? body : [])
    }

    /// Sends what is left of the response; false once it is all sent (or the client is gone).
    private func send(_ client: Client) -> Bool {
        while !client.unsent.isEmpty {
            switch client.unsent.withUnsafeBytes({ Syscall.send(client.descriptor, $0) }) {
            case .success(let sent): client.unsent.removeFirst(sent)
            case .failure(.wouldBlock): return true
            case .failure: return false
            }
        }
        return false
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 431: "Request Header Fields Too Large"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}
