import Glibc

/// The NATS client's only system calls: a TCP connection, made with a timeout, read and written
/// with EINTR retried and every descriptor close-on-exec. (The client is a module of its own;
/// the host's syscall layer is not visible here.)
struct NATSSocket: Sendable, Equatable {
    let descriptor: Int32

    static func isNumericHost(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Connects to `server` within `timeoutMilliseconds`; reads wait at most
    /// `readTimeoutMilliseconds` (the keep-alive's tick), writes at most `writeTimeoutMilliseconds`.
    static func connect(to server: NATSServerURL, timeoutMilliseconds: Int32, readTimeoutMilliseconds: Int, writeTimeoutMilliseconds: Int)
        -> Result<NATSSocket, NATSError>
    {
        var storage = sockaddr_storage()
        var length: socklen_t
        var family: Int32
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET, server.host, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = server.port.bigEndian
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { target in withUnsafeBytes(of: v4) { target.copyMemory(from: $0) } }
        } else if inet_pton(AF_INET6, server.host, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = server.port.bigEndian
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { target in withUnsafeBytes(of: v6) { target.copyMemory(from: $0) } }
        } else {
            return .failure(.usage("\(server): not a numeric address"))
        }
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { return .failure(.cannotConnect("\(server): socket: \(String(cString: strerror(errno)))")) }
        let started = withUnsafeBytes(of: storage) { Glibc.connect(descriptor, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        if started != 0 {
            guard errno == EINPROGRESS else { return failed(descriptor, server, errno) }
            var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            var polled: Int32
            repeat { polled = poll(&ready, 1, timeoutMilliseconds) } while polled < 0 && errno == EINTR
            guard polled > 0 else { return failed(descriptor, server, ETIMEDOUT) }
            var status: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &status, &size)
            guard status == 0 else { return failed(descriptor, server, status) }
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setTimeout(descriptor, SO_RCVTIMEO, milliseconds: readTimeoutMilliseconds)
        setTimeout(descriptor, SO_SNDTIMEO, milliseconds: writeTimeoutMilliseconds)
        return .success(NATSSocket(descriptor: descriptor))
    }

    private static func failed(_ descriptor: Int32, _ server: NATSServerURL, _ code: Int32) -> Result<NATSSocket, NATSError> {
        Glibc.close(descriptor)
        return .failure(.cannotConnect("\(server): \(String(cString: strerror(code)))"))
    }

    private static func setTimeout(_ descriptor: Int32, _ option: Int32, milliseconds: Int) {
        var time = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        setsockopt(descriptor, SOL_SOCKET, option, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    enum ReadOutcome: Equatable {
        case bytes(Int)
        /// The read timeout passed with nothing read.
        case idle
        case closed
        case failed(Int32)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadOutcome {
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 { return .bytes(count) }
            if count == 0 { return .closed }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .idle
            case let code: return .failed(code)
            }
        }
    }

    /// Writes every byte, or fails (a write that times out fails: the server does not read).
    func writeAll(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let count = send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if count > 0 {
                    offset += count
                } else if count < 0, errno == EINTR {
                    continue
                } else {
                    return false
                }
            }
            return true
        }
    }

    /// Makes the reader's next read end, from any thread; the reader closes the descriptor.
    func shutdown() { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }

    func close() { Glibc.close(descriptor) }
}
