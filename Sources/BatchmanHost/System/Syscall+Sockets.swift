import CBatchmanSystem
import Glibc

/// The socket calls of `--listen` and `batchman submit`, wrapped like the rest of ``Syscall``:
/// EINTR retried, errors as ``Errno``, every descriptor close-on-exec.
extension Syscall {
    /// A socket address of either family, as the kernel takes it.
    struct SocketAddress {
        var storage = sockaddr_storage()
        var length: socklen_t

        /// `unix:PATH`; nil if the path does not fit in `sun_path` (108 bytes with its NUL).
        init?(unixPath path: String) {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard !bytes.isEmpty, bytes.count < capacity else { return nil }
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
            length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
            withUnsafeMutableBytes(of: &storage) { target in withUnsafeBytes(of: address) { target.copyMemory(from: $0) } }
        }

        /// A numeric IPv4 or IPv6 address and a port; nil if `host` is neither.
        init?(numericHost host: String, port: UInt16) {
            var v4 = sockaddr_in()
            if inet_pton(AF_INET, host, &v4.sin_addr) == 1 {
                v4.sin_family = sa_family_t(AF_INET)
                v4.sin_port = port.bigEndian
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
                withUnsafeMutableBytes(of: &storage) { target in withUnsafeBytes(of: v4) { target.copyMemory(from: $0) } }
                return
            }
            var v6 = sockaddr_in6()
            guard inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 else { return nil }
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { target in withUnsafeBytes(of: v6) { target.copyMemory(from: $0) } }
        }

        init(storage: sockaddr_storage, length: socklen_t) {
            self.storage = storage
            self.length = length
        }

        var family: Int32 { Int32(storage.ss_family) }

        /// The port of an IPv4 or IPv6 address.
        var port: UInt16 {
            withUnsafeBytes(of: storage) { raw in
                family == AF_INET6 ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
                    : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
            }
        }

        func withPointer<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
            withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        }
    }

    /// A stream socket of `family`, close-on-exec, non-blocking if asked.
    static func streamSocket(family: Int32, nonBlocking: Bool = false) -> Result<Int32, Errno> {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        return valueOrErrno { socket(family, type, 0) }
    }

    /// A datagram socket of the Unix family, close-on-exec (systemd's notification socket).
    static func datagramSocket() -> Result<Int32, Errno> {
        valueOrErrno { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    static func bind(_ descriptor: Int32, to address: SocketAddress) -> Result<Void, Errno> {
        address.withPointer { pointer, length in valueOrErrno { Glibc.bind(descriptor, pointer, length) } }.map { _ in () }
    }

    static func listen(_ descriptor: Int32, backlog: Int32) -> Result<Void, Errno> {
        valueOrErrno { Glibc.listen(descriptor, backlog) }.map { _ in () }
    }

    /// Connects, waiting for the connection (the socket must be blocking).
    static func connect(_ descriptor: Int32, to address: SocketAddress) -> Result<Void, Errno> {
        address.withPointer { pointer, length in valueOrErrno { Glibc.connect(descriptor, pointer, length) } }.map { _ in () }
    }

    /// Takes a waiting connection as a non-blocking, close-on-exec socket; `.wouldBlock` when none waits.
    static func accept(_ descriptor: Int32) -> Result<Int32, Errno> {
        valueOrErrno { bm_accept_nonblocking(descriptor) }
    }

    /// The address a socket is bound to (a port 0 bind learns its port here).
    static func localAddress(of descriptor: Int32) -> Result<SocketAddress, Errno> {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in valueOrErrno { getsockname(descriptor, address, &length) } }
        }.map { _ in SocketAddress(storage: storage, length: length) }
    }

    static func setOption(_ descriptor: Int32, level: Int32, _ option: Int32, _ value: Int32) {
        var value = value
        _ = setsockopt(descriptor, level, option, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// `send(2)` once, without SIGPIPE: the count sent (`.wouldBlock` on a full non-blocking socket).
    static func send(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Result<Int, Errno> {
        valueOrErrno { Glibc.send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Shuts the socket's sending side: the peer reads the end of the stream.
    static func shutdownSending(_ descriptor: Int32) {
        _ = Glibc.shutdown(descriptor, Int32(SHUT_WR))
    }
}
