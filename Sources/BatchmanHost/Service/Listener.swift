import Batchman
import Glibc

/// One `--listen` socket, bound and listening, non-blocking: the input loop accepts its clients.
///
/// A Unix socket's file is the host's while it runs: a stale one (left by a host that is gone,
/// which nobody answers on) is replaced, any other file at the path is refused, and the file
/// is removed at exit if it is still the one this listener made.
final class Listener {
    /// The address as bound: a TCP port 0 becomes the port the kernel picked.
    let address: ServiceAddress
    let descriptor: Int32
    /// The Unix socket file's device and inode, to remove only our own at exit.
    private let socketFile: (device: UInt64, inode: UInt64)?
    private var isClosed = false

    private init(address: ServiceAddress, descriptor: Int32, socketFile: (UInt64, UInt64)?) {
        self.address = address
        self.descriptor = descriptor
        self.socketFile = socketFile
    }

    /// Binds and listens on `address`.
    /// - Throws: ``HostError`` (`.runtime`) saying what is in the way and what to do.
    static func open(_ address: ServiceAddress, logger: BatchmanLogger) throws(HostError) -> Listener {
        if case .unix(let path) = address { try clearStaleSocket(at: path, logger: logger) }
        let descriptor: Int32
        switch Syscall.streamSocket(family: address.family, nonBlocking: true) {
        case .success(let opened): descriptor = opened
        case .failure(let error): throw HostError(.runtime, "--listen \(address): cannot make a socket: \(error)")
        }
        if case .tcp = address { Syscall.setOption(descriptor, level: SOL_SOCKET, SO_REUSEADDR, 1) }
        let bound = Syscall.bind(descriptor, to: address.socketAddress).flatMap { Syscall.listen(descriptor, backlog: 512) }
        if case .failure(let error) = bound {
            Glibc.close(descriptor)
            let hint = error.rawValue == EADDRINUSE ? "; another process listens there: stop it or choose another address" : ""
            throw HostError(.runtime, "--listen \(address): cannot listen: \(error)\(hint)")
        }
        switch address {
        case .unix(let path):
            var status = stat()
            let file = lstat(path, &status) == 0 ? (UInt64(status.st_dev), UInt64(status.st_ino)) : nil
            return Listener(address: address, descriptor: descriptor, socketFile: file)
        case .tcp(let host, _):
            let port = (try? Syscall.localAddress(of: descriptor).get())?.port ?? 0
            return Listener(address: .tcp(host: host, port: port), descriptor: descriptor, socketFile: nil)
        }
    }

    /// A socket file at `path` that nobody answers on is left by a host that is gone: removed.
    /// Anything else there is not ours to remove.
    private static func clearStaleSocket(at path: String, logger: BatchmanLogger) throws(HostError) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        guard status.st_mode & S_IFMT == S_IFSOCK else {
            throw HostError(.runtime, "--listen unix:\(path): the path exists and is not a socket; remove it or choose another path")
        }
        guard case .success(let probe) = Syscall.streamSocket(family: AF_UNIX) else { return }
        defer { Glibc.close(probe) }
        switch Syscall.connect(probe, to: Syscall.SocketAddress(unixPath: path)!) {
        case .success:
            throw HostError(.runtime, "--listen unix:\(path): another process is listening on this socket (a running host?); stop it or choose another path")
        case .failure(let error) where error.rawValue == ECONNREFUSED:
            guard unlink(path) == 0 else {
                throw HostError(.runtime, "--listen unix:\(path): a stale socket file is in the way and cannot be removed: \(Errno.current)")
            }
            logger.log(.info, "--listen unix:\(path): replaced a stale socket file that no process listens on")
        case .failure(let error):
            throw HostError(.runtime, "--listen unix:\(path): a socket file is in the way and cannot be probed (\(error)); remove it or choose another path")
        }
    }

    /// Stops listening; a Unix socket's file is removed if it is still the one bound here.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
        guard case .unix(let path) = address, let socketFile else { return }
        var status = stat()
        if lstat(path, &status) == 0, UInt64(status.st_dev) == socketFile.device, UInt64(status.st_ino) == socketFile.inode { unlink(path) }
    }
}
