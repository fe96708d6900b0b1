import Batchman
import Glibc

/// A `--listen` socket as a source: accepts clients, each a ``ClientSource`` of its own, up to
/// `--max-connections`.
final class ListenerSource: InputSource {
    let listener: Listener
    /// Out of descriptors: not polled until then (monotonic nanoseconds), or the loop would wake
    /// at once, again and again, for a client it cannot take.
    private var pausedUntil: UInt64?
    private var isStopped = false
    static let pauseNanoseconds: UInt64 = 1_000_000_000

    init(_ listener: Listener) {
        self.listener = listener
    }

    var descriptor: Int32 { listener.descriptor }
    var isFinished: Bool { isStopped }
    var deadline: UInt64? { pausedUntil }

    func events(reading: Bool, loop: InputLoop) -> Int16 {
        if let until = pausedUntil, Syscall.monotonicNanoseconds() >= until { pausedUntil = nil }
        return pausedUntil == nil ? Int16(POLLIN) : 0
    }

    func ready(_ revents: Int16, reading: Bool, loop: InputLoop) {
        while true {
            let descriptor: Int32
            switch Syscall.accept(listener.descriptor) {
            case .success(let accepted): descriptor = accepted
            case .failure(.wouldBlock), .failure(.interrupted): return
            case .failure(let error) where error.rawValue == EMFILE || error.rawValue == ENFILE:
                // The client waits in the listen backlog; accepting resumes in a second.
                pausedUntil = Syscall.monotonicNanoseconds() + Self.pauseNanoseconds
                loop.logger.log(.warning, "--listen \(listener.address): cannot accept a client: \(error) (ulimit -n \(ProcessBudget.descriptorLimit()), "
                                + "\(loop.clients) clients connected); raise ulimit -n or lower --max-connections; accepting again in a second")
                return
            case .failure(let error):
                loop.logger.log(.warning, "--listen \(listener.address): cannot accept a client: \(error)")
                return
            }
            guard loop.clients < loop.configuration.maxConnections else {
                Glibc.close(descriptor)
                loop.logger.log(.warning, "--listen \(listener.address): closed a new client at once: --max-connections \(loop.configuration.maxConnections) "
                                + "reached; raise it, or have clients share connections")
                continue
            }
            loop.add(ClientSource(descriptor: descriptor, listener: listener.address, loop: loop))
        }
    }

    /// No new clients: the socket is closed (and its file removed).
    func stopReading(loop: InputLoop) {
        isStopped = true
        listener.close()
    }

    func close(loop: InputLoop) {
        listener.close()
    }
}
