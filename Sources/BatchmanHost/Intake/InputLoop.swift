import Batchman
import FoundationEssentials
import Glibc
import Synchronization

/// The host's input thread: one poll loop over every source of jobs (standard input or a file,
/// `--listen` sockets, their clients' connections), so that every job reaches the core from
/// one thread and a reload switches configuration between two reads, for all sources at once.
///
/// It reads a chunk from each source that is ready and may be read (its destination has room),
/// hands the chunk's lines to ``JobIntake``, accepts clients up to `--max-connections`, writes
/// what a full socket left once it is writable, and closes connections that are done. After
/// reading ends (end of input, or ``stop()``) it goes on writing to clients still connected
/// until each has every result of its jobs, or until ``finish(within:)``'s grace runs out.
///
/// `@unchecked Sendable`: the sources, connections and splitters are touched only by the loop's
/// own thread; other threads call ``stop()``, ``wake()`` and ``finish(within:)``, which use the
/// atomics and the wake pipe only.
final class InputLoop: @unchecked Sendable {
    struct Configuration {
        var maxConnections: Int
        var maxOutputBytes: Int
        /// Lines of the stream come from a file: the spool keeps where they end.
        var streamIsResumable: Bool
    }

    /// The stream source (standard input or `--input`) and where its results go.
    struct Stream {
        let reader: InputReader
        let destination: OutputSink
        let writer: ResultWriter
    }

    private let configuration: Configuration
    private let intake: JobIntake
    private let generations: Generations
    private let reloads: ReloadCoordinator
    private let pending: PendingBytes
    private let spool: Spool?
    private let counters: ServiceCounters
    private let logger: BatchmanLogger
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let isStopped = Atomic<Bool>(false)
    /// Nanoseconds (monotonic) after which connections still writing are closed; 0 until told.
    private let finishDeadline = Atomic<UInt64>(0)
    /// Every connection closed (after reading ended).
    let closed = OneTimeEvent()

    // The loop thread's own.
    private var stream: Stream?
    private var listeners: [Listener]
    private var clients: [Client] = []
    private var nextScope: UInt32 = 1
    /// Out of descriptors: listeners are not polled until then (monotonic nanoseconds), or the
    /// loop would wake at once, again and again, for a client it cannot take.
    private var acceptPausedUntil: UInt64?
    static let acceptPauseNanoseconds: UInt64 = 1_000_000_000
    private var generation: HostGeneration

    /// A connection and what the loop keeps of it.
    private final class Client {
        let connection: Connection
        var splitter: LineSplitter
        init(_ connection: Connection, maxLineBytes: Int) {
            self.connection = connection
            splitter = LineSplitter(maxLineBytes: maxLineBytes)
        }
    }

    private let maxLineBytes: Int

    init(
        configuration: Configuration, stream: Stream?, listeners: [Listener], maxLineBytes: Int, intake: JobIntake, generations: Generations,
        reloads: ReloadCoordinator, pending: PendingBytes, spool: Spool?, counters: ServiceCounters, logger: BatchmanLogger
    ) {
        self.configuration = configuration
        self.stream = stream
        self.listeners = listeners
        self.maxLineBytes = maxLineBytes
        self.intake = intake
        self.generations = generations
        self.reloads = reloads
        self.pending = pending
        self.spool = spool
        self.counters = counters
        self.logger = logger
        self.generation = generations.current
        guard case .success(let ends) = Syscall.pipe() else { preconditionFailure("cannot create the input loop's wake-up pipe: \(Errno.current)") }
        wakeRead = ends.read
        wakeWrite = ends.write
        for end in [wakeRead, wakeWrite] { _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK) }
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Makes the loop look again: a reload to take over, a connection to close or to poll anew.
    /// Safe from any thread.
    func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    /// Stops reading: no more lines, no more clients; what was read is handled. Safe from any thread.
    func stop() {
        guard !isStopped.exchange(true, ordering: .relaxed) else { return }
        wake()
    }

    /// Every accepted job has its result: connections still writing get `seconds` more, then
    /// are closed. Safe from any thread.
    func finish(within seconds: Int) {
        finishDeadline.store(Syscall.monotonicNanoseconds() + UInt64(seconds) * 1_000_000_000, ordering: .relaxed)
        wake()
    }

    /// Reads until the stream ends (with no listeners) or ``stop()``, on a thread of its own,
    /// and returns how the stream ended and its last line's number; then, still on that thread,
    /// serves the connections until ``closed``.
    func run() async -> (InputReader.End, Int) {
        await withCheckedContinuation { continuation in
            DedicatedThread.start(name: "batchman-input") { [self] in
                let end = read()
                continuation.resume(returning: (end, stream?.reader.lastLine ?? 0))
                serveUntilClosed()
            }
        }
    }

    // MARK: - Reading

    private func read() -> InputReader.End {
        var streamEnd: InputReader.End?
        var lines: [ReadLine] = []
        while !isStopped.load(ordering: .relaxed) {
            takeOverStaged()
            // At the memory bound no source is read, but the loop goes on: it writes to clients,
            // whose unwritten results hold part of the bound.
            let reading = pending.hasRoom(onFirstPause: { [logger, pending] in
                logger.log(.info, "reading input paused: accepted jobs without a result take --max-pending-bytes (\(pending.limit)); "
                           + "reading resumes as their results are written")
            }, onRoom: { [self] in wake() })
            var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let streamIndex = reading && streamEnd == nil && streamHasRoom() ? descriptors.count : nil
            if let streamIndex, let stream { descriptors.insert(pollfd(fd: stream.reader.fileDescriptor, events: Int16(POLLIN), revents: 0), at: streamIndex) }
            let listenersStart = descriptors.count
            if let until = acceptPausedUntil, Syscall.monotonicNanoseconds() >= until { acceptPausedUntil = nil }
            let accepting = acceptPausedUntil == nil
            for listener in listeners { descriptors.append(pollfd(fd: listener.descriptor, events: accepting ? Int16(POLLIN) : 0, revents: 0)) }
            let clientsStart = descriptors.count
            let polled = clients  // accepting below adds clients that were not polled
            for client in polled {
                descriptors.append(pollfd(fd: client.connection.descriptor, events: Self.events(of: client.connection, reading: reading), revents: 0))
            }
            guard case .success(let ready) = Syscall.poll(&descriptors, milliseconds: Syscall.pollMilliseconds(until: acceptPausedUntil)) else { continue }
            if ready == 0 { continue }
            if descriptors[0].revents != 0 { drainWakePipe() }
            if isStopped.load(ordering: .relaxed) { break }
            if let streamIndex, descriptors[streamIndex].revents != 0, let stream {
                if let end = readStream(stream, into: &lines) {
                    streamEnd = end
                    if listeners.isEmpty { return end }
                    if case .endOfInput = end {
                        logger.log(.info, "input ended after line \(stream.reader.lastLine); serving clients until SIGINT or SIGTERM")
                    } else if case .readError(let code) = end {
                        logger.log(.error, "reading input failed after line \(stream.reader.lastLine): \(Errno(rawValue: code)); serving clients until SIGINT or SIGTERM")
                    }
                }
            }
            for (offset, listener) in listeners.enumerated() where descriptors[listenersStart + offset].revents != 0 { accept(from: listener) }
            for (offset, client) in polled.enumerated() {
                let events = descriptors[clientsStart + offset].revents
                guard events != 0 else { continue }
                if events & Int16(POLLOUT) != 0 { client.connection.writable() }
                if events & Int16(POLLIN) != 0, reading, client.connection.wantsInput {
                    readClient(client, into: &lines)
                } else if events & Int16(POLLHUP | POLLERR) != 0 {
                    _ = client.connection.clientLeft()  // hung up without being read to its end
                }
            }
            sweepClosed()
        }
        // Stopped: a stream's line begun is wound back (a file) or reported cut short (a pipe).
        if let stream, streamEnd == nil {
            stream.reader.stop { event in
                switch event {
                case .putBack(let number, let offset):
                    logger.log(.info, "line \(number) was only partly read: input wound back to its start (byte \(offset)) for the next run")
                case .cutShort(let number):
                    intake.reportInvalid(line: number, "input stopped in the middle of this line; it was not read whole", origin: streamOrigin(stream))
                default: break
                }
            }
        }
        return streamEnd ?? .stopped
    }

    private static func events(of connection: Connection, reading: Bool = true) -> Int16 {
        Int16((reading && connection.wantsInput ? POLLIN : 0) | (connection.wantsWritable ? POLLOUT : 0))
    }

    /// Whether the stream's output has room; if not, the writer wakes the loop once it has.
    private func streamHasRoom() -> Bool {
        guard let stream else { return false }
        return stream.writer.hasRoom(onPause: { [logger, configuration] pause in
            guard pause == 1 else { return }
            logger.log(.info, "output is not being read: \(configuration.maxOutputBytes) bytes of results are waiting; "
                       + "reading input paused until the consumer catches up (counted as outputPauses in the statistics)")
        }, onRoom: { [self] in wake() })
    }

    private func streamOrigin(_ stream: Stream) -> LineOrigin {
        LineOrigin(destination: stream.destination, scope: 0, connection: nil, isResumable: configuration.streamIsResumable, isReplay: false)
    }

    /// Reads one chunk of the stream and takes its lines; returns how the stream ended, if it did.
    private func readStream(_ stream: Stream, into lines: inout [ReadLine]) -> InputReader.End? {
        let readAt = Date()
        let origin = streamOrigin(stream)
        let end = stream.reader.readChunk { event in
            switch event {
            case .line(let number, let bytes, let end):
                let parsed = bytes.withUnsafeBufferPointer { JobLine.parse($0) }
                if parsed != .blank { lines.append(ReadLine(bytes: bytes, number: number, end: end, parsed: parsed)) }
            case .tooLong(let number, let length, let end):
                // Spooled as an empty record: the line's bytes were never kept.
                lines.append(ReadLine(bytes: [], number: number, end: end, parsed: nil, tooLongBy: length))
            case .cutShort(let number):
                intake.reportInvalid(line: number, "input stopped in the middle of this line; it was not read whole", origin: origin)
            case .putBack: break
            }
        }
        if intake.take(&lines, from: origin, readAt: readAt, into: generation.core) == .stopReading { stop() }
        return end
    }

    /// A staged configuration (a reload) becomes the one jobs go to, between two reads.
    private func takeOverStaged() {
        guard generations.isStaged else { return }
        generation = generations.switchIfStaged(describe: ReloadReport.describe)
        reloads.didSwitch()
    }

    // MARK: - Clients

    private func accept(from listener: Listener) {
        while true {
            let descriptor: Int32
            switch Syscall.accept(listener.descriptor) {
            case .success(let accepted): descriptor = accepted
            case .failure(.wouldBlock), .failure(.interrupted): return
            case .failure(let error) where error.rawValue == EMFILE || error.rawValue == ENFILE:
                // The client waits in the listen backlog; accepting resumes in a second.
                acceptPausedUntil = Syscall.monotonicNanoseconds() + Self.acceptPauseNanoseconds
                var limit = rlimit()
                getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
                logger.log(.warning, "--listen \(listener.address): cannot accept a client: \(error) (ulimit -n \(limit.rlim_cur), \(clients.count) "
                           + "clients connected); raise ulimit -n or lower --max-connections; accepting again in a second")
                return
            case .failure(let error):
                logger.log(.warning, "--listen \(listener.address): cannot accept a client: \(error)")
                return
            }
            guard clients.count < configuration.maxConnections else {
                Glibc.close(descriptor)
                logger.log(.warning, "--listen \(listener.address): closed a new client at once: --max-connections \(configuration.maxConnections) "
                           + "reached; raise it, or have clients share connections")
                continue
            }
            let scope = nextScope
            nextScope = nextScope == .max ? 1 : nextScope + 1
            let connection = Connection(descriptor: descriptor, scope: scope, name: "client \(scope) on \(listener.address)",
                                        maxOutputBytes: configuration.maxOutputBytes, spool: spool, pending: pending, counters: counters,
                                        wakeLoop: { [self] in wake() })
            counters.connected()
            clients.append(Client(connection, maxLineBytes: maxLineBytes))
        }
    }

    /// Reads one chunk from a client and takes its lines; its end of stream ends its input.
    private func readClient(_ client: Client, into lines: inout [ReadLine]) {
        let connection = client.connection
        let readAt = Date()
        var outcome = Result<Int, Errno>.success(0)
        let chunk = [UInt8](unsafeUninitializedCapacity: InputReader.chunkSize) { buffer, count in
            outcome = Syscall.read(connection.descriptor, into: UnsafeMutableRawBufferPointer(buffer))
            count = (try? outcome.get()) ?? 0
        }
        let origin = LineOrigin(destination: connection, scope: connection.scope, connection: connection, isResumable: false, isReplay: false)
        func collect(_ line: LineSplitter.Line) {
            switch line {
            case .line(let number, let bytes, _):
                let parsed = bytes.withUnsafeBufferPointer { JobLine.parse($0) }
                if parsed != .blank { lines.append(ReadLine(bytes: bytes, number: number, end: 0, parsed: parsed)) }
            case .tooLong(let number, let length, _):
                lines.append(ReadLine(bytes: [], number: number, end: 0, parsed: nil, tooLongBy: length))
            }
        }
        switch outcome {
        case .success(0):
            client.splitter.finish(collect)
            take(&lines, from: origin, readAt: readAt)
            _ = connection.inputEnded()
        case .success:
            client.splitter.feed(InputReader.compacted(chunk), collect)
            take(&lines, from: origin, readAt: readAt)
        case .failure(.wouldBlock), .failure(.interrupted):
            return
        case .failure:
            _ = connection.clientLeft()
        }
    }

    private func take(_ lines: inout [ReadLine], from origin: LineOrigin, readAt: Date) {
        if intake.take(&lines, from: origin, readAt: readAt, into: generation.core) == .stopReading { stop() }
    }

    /// Closes the connections that are done, and says which clients left before their results.
    private func sweepClosed() {
        clients.removeAll { client in
            let connection = client.connection
            guard connection.isClosed else { return false }
            Glibc.close(connection.descriptor)
            counters.disconnected()
            let dropped = connection.dropped
            if dropped > 0 { counters.orphaned(dropped) }
            if connection.clientIsGone {
                logger.log(.warning, "\(connection.name) went away before all its results were written; its accepted jobs still run, "
                           + "and results nobody can receive are counted as orphaned")
            }
            return true
        }
    }

    // MARK: - After reading

    /// Reading has ended: no new clients; every connection takes no more lines and closes once
    /// its results are written, or when the grace after the drain runs out.
    private func serveUntilClosed() {
        for listener in listeners { listener.close() }
        listeners = []
        for client in clients { _ = client.connection.inputEnded() }
        sweepClosed()
        while !clients.isEmpty {
            let deadline = finishDeadline.load(ordering: .relaxed)
            if deadline != 0, Syscall.monotonicNanoseconds() >= deadline {
                logger.log(.warning, "closing \(HostSession.count(clients.count, "client")) that did not read every result in time; "
                           + "the results not written are counted as orphaned")
                for client in clients { _ = client.connection.clientLeft() }
                sweepClosed()
                break
            }
            var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            for client in clients { descriptors.append(pollfd(fd: client.connection.descriptor, events: Self.events(of: client.connection), revents: 0)) }
            _ = Syscall.poll(&descriptors, milliseconds: deadline == 0 ? -1 : Syscall.pollMilliseconds(until: deadline))
            if descriptors[0].revents != 0 { drainWakePipe() }
            for (offset, client) in clients.enumerated() {
                let events = descriptors[offset + 1].revents
                if events & Int16(POLLOUT) != 0 { client.connection.writable() }
                if events & Int16(POLLHUP | POLLERR) != 0 { _ = client.connection.clientLeft() }
            }
            sweepClosed()
        }
        closed.happen()
    }

    private func drainWakePipe() {
        var bytes = [UInt8](repeating: 0, count: 256)
        while Glibc.read(wakeRead, &bytes, bytes.count) > 0 {}
    }
}
