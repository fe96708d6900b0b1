import Batchman
import Dispatch
import Glibc
import Synchronization

/// What `batchman submit` was asked to do.
public struct SubmitOptions: Equatable, Sendable {
    public var address: ServiceAddress
    /// Jobs from this file instead of standard input.
    public var inputPath: String?
}

/// `batchman submit --connect ADDRESS [--input FILE]`: a client of a host's `--listen` socket.
/// Sends the job lines as they are read, prints every result line as it comes back, and tells
/// by its exit status whether every job it sent was answered.
public enum SubmitClient {
    /// Runs the client and returns its exit status: 0 every job answered, 66 the input cannot
    /// be read, 69 no host to connect to, 70 the connection ended before every result.
    public static func run(_ options: SubmitOptions, logger: BatchmanLogger = .standardError) -> Int32 {
        let input: Int32
        if let path = options.inputPath, path != "-" {
            guard case .success(let opened) = Syscall.open(path, O_RDONLY) else {
                logger.log(.error, "submit: --input \(path): \(Errno.current)")
                return 66
            }
            input = opened
        } else {
            input = STDIN_FILENO
        }
        let socket: Int32
        switch connect(to: options.address) {
        case .success(let connected): socket = connected
        case .failure(let error):
            logger.log(.error, "submit: cannot connect to \(options.address): \(error); is a host running with --listen \(options.address)?")
            return 69
        }
        defer { close(socket) }
        let sender = Sender()
        DedicatedThread.start(name: "batchman-submit") { sender.send(from: input, to: socket) }
        let received = receive(from: socket)
        let (sent, sendError) = sender.waitUntilDone()
        if let sendError {
            logger.log(.error, "submit: sending jobs to \(options.address) failed: \(sendError); \(received) results came back")
            return 70
        }
        guard received >= sent else {
            logger.log(.error, "submit: the connection to \(options.address) ended after \(received) of \(sent) results")
            return 70
        }
        return 0
    }

    static func connect(to address: ServiceAddress) -> Result<Int32, Errno> {
        Syscall.streamSocket(family: address.family).flatMap { socket in
            switch Syscall.connect(socket, to: address.socketAddress) {
            case .success: return .success(socket)
            case .failure(let error):
                close(socket)
                return .failure(error)
            }
        }
    }

    /// Copies result lines to standard output until the host closes the connection; returns
    /// how many lines came.
    private static func receive(from socket: Int32) -> Int {
        var lines = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = (try? buffer.withUnsafeMutableBytes { Syscall.read(socket, into: $0) }.get()) ?? 0
            guard count > 0 else { return lines }
            lines += buffer[..<count].count { $0 == UInt8(ascii: "\n") }
            _ = buffer.withUnsafeBytes { Syscall.writeAll(STDOUT_FILENO, UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
    }

    /// Sends the input on a thread of its own, counting the lines that are jobs to the host
    /// (every line but blank ones), then shuts the sending side so that the host knows.
    private final class Sender: Sendable {
        private struct State {
            var sent = 0
            var error: Errno?
        }

        private let state = Mutex(State())
        private let done = DispatchSemaphore(value: 0)

        func send(from input: Int32, to socket: Int32) {
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            var sent = 0
            var lineHasContent = false
            var failure: Errno?
            while true {
                let result = buffer.withUnsafeMutableBytes { Syscall.read(input, into: $0) }
                guard case .success(let count) = result, count > 0 else {
                    if case .failure(let error) = result { failure = error }
                    break
                }
                for byte in buffer[..<count] {
                    if byte == UInt8(ascii: "\n") {
                        if lineHasContent { sent += 1 }
                        lineHasContent = false
                    } else if !Self.isWhitespace(byte) {
                        lineHasContent = true
                    }
                }
                if case .failure(let error) = buffer.withUnsafeBytes({ Syscall.writeAll(socket, UnsafeRawBufferPointer(rebasing: $0[..<count]), isSocket: true) }) {
                    failure = error
                    break
                }
            }
            if lineHasContent { sent += 1 }  // a last line without a newline is still a job
            Syscall.shutdownSending(socket)
            state.withLock {
                $0.sent = sent
                $0.error = failure
            }
            done.signal()
        }

        func waitUntilDone() -> (sent: Int, error: Errno?) {
            done.wait()
            return state.withLock { ($0.sent, $0.error) }
        }

        private static func isWhitespace(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
        }
    }
}
