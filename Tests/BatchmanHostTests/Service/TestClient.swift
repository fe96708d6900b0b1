import BatchmanTesting
import Foundation
import Synchronization
import Testing

/// A client of a host's `--listen` socket, as an application would write one: it sends job
/// lines and reads its results on threads of its own, so that nothing blocks the tests' pool.
final class TestClient: Sendable {
    let socket: Int32
    /// Every result line read, as it comes.
    let lines = RecordLog<String>()
    /// Appended once the host has closed the connection (end of stream or an error).
    let ended = RecordLog<Void>()
    private let isReading = Atomic<Bool>(false)

    struct ConnectFailure: Error { let errno: Int32 }

    /// Connects to `unix:path`.
    init(unixPath path: String, reads: Bool = true) throws {
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard status == 0 else {
            let error = errno
            close(socket)
            throw ConnectFailure(errno: error)
        }
        self.socket = socket
        if reads { startReading() }
    }

    /// Connects to `tcp:127.0.0.1:port`.
    init(port: UInt16) throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            let error = errno
            close(socket)
            throw ConnectFailure(errno: error)
        }
        self.socket = socket
        startReading()
    }

    deinit { close(socket) }

    /// Reads result lines until the host closes the connection.
    func startReading() {
        guard !isReading.exchange(true, ordering: .relaxed) else { return }
        let socket = socket
        let lines = lines
        let ended = ended
        Thread.detachNewThread {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = Glibc.read(socket, &buffer, buffer.count)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                pending += buffer[..<count]
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            ended.append(())
        }
    }

    /// Writes `lines` from a thread of its own (a host that stops reading never blocks a test),
    /// then shuts the sending side if asked: the host answers what it got and closes.
    func send(_ lines: [String], thenShutDown: Bool = false) {
        let bytes = Array(lines.map { $0 + "\n" }.joined().utf8)
        let socket = socket
        Thread.detachNewThread {
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if written < 0, errno == EINTR { continue }
                if written <= 0 { break }
                offset += written
            }
            if thenShutDown { shutdown(socket, Int32(SHUT_WR)) }
        }
    }

    /// Sends `lines` and shuts the sending side, then waits until the host has closed the
    /// connection; returns every result line, parsed.
    func exchange(_ lines: [String]) async throws -> [ResultLine] {
        send(lines, thenShutDown: true)
        await ended.wait(forCount: 1)
        return try await ResultLine.parse(self.lines.elements)
    }

    /// Closes the connection at once, reading nothing more: the client is gone.
    func hangUp() {
        shutdown(socket, Int32(SHUT_RDWR))
    }
}

/// A host started with `--listen` on a Unix socket in a scratch folder.
struct ServiceHost {
    let process: HostProcess
    let socketPath: String

    /// Starts `batchman run` on `manifest`, listening on `unix:<scratch>/batchman.sock` (plus
    /// `arguments`), and waits until it listens.
    init(_ scratch: Scratch, manifest: String, arguments: [String] = []) async throws {
        socketPath = scratch.path("batchman.sock")
        process = try HostProcess(["run", manifest, "--listen", "unix:\(socketPath)"] + arguments)
        await process.waitForLog(containing: "listening on unix:")
    }

    func client(reads: Bool = true) throws -> TestClient { try TestClient(unixPath: socketPath, reads: reads) }

    /// The statistics line the host prints as it exits.
    var lastStatistics: String? { process.stderr.elements.last { $0.contains("stats: accepted=") } }
}
