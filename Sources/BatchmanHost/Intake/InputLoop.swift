import Batchman
import FoundationEssentials
import Glibc
import Synchronization

/// The host's input thread: one poll loop over every source of jobs (``InputSource``: standard
/// input or a file, `--listen` sockets, their clients' connections), so that every job reaches
/// the core from one thread and a reload switches configuration between two reads, for all
/// sources at once.
///
/// Each turn it asks every source what to wait for, polls, and lets the ready ones read (their
/// lines go through ``JobIntake``), accept or write; sources that are done are closed and
/// dropped. At the memory bound (`--max-pending-bytes`) no source reads, but the loop goes on:
/// clients' unwritten results hold part of the bound, and only writing them frees it. After
/// reading ends (end of input, or ``stop()``) it goes on serving the clients still connected
/// until each has every result of its jobs, or ``finish(within:)``'s grace runs out.
///
/// `@unchecked Sendable`: the sources are touched only by the loop's own thread; other threads
/// call ``stop()``, ``wake()`` and ``finish(within:)``, which use the atomics and the wake pipe.
final class InputLoop: @unchecked Sendable {
    struct Configuration {
        var maxConnections: Int
        var maxOutputBytes: Int
    }

    let configuration: Configuration
    let intake: JobIntake
    let pending: PendingBytes
    let spool: Spool?
    let counters: ServiceCounters
    let logger: BatchmanLogger
    let maxLineBytes: Int
    private let generations: Generations
    private let reloads: ReloadCoordinator
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let isStopped = Atomic<Bool>(false)
    /// Nanoseconds (monotonic) after which connections still writing are closed; 0 until told.
    private let finishDeadline = Atomic<UInt64>(0)
    /// Every connection closed (after reading ended).
    let closed = OneTimeEvent()

    // The loop thread's own.
    private var sources: [any InputSource]
    /// Standard input or `--input`, whose end ends the run of a host that serves no clients.
    private let stream: StreamSource?
    /// Clients connected now (`--max-connections`).
    private(set) var clients = 0
    private var lastScope: UInt32 = 0
    private var generation: HostGeneration

    init(
        configuration: Configuration, stream: StreamSource?, listeners: [Listener], maxLineBytes: Int, intake: JobIntake, generations: Generations,
        reloads: ReloadCoordinator, pending: PendingBytes, spool: Spool?, counters: ServiceCounters, logger: BatchmanLogger
    ) {
        self.configuration = configuration
        self.stream = stream
        self.sources = (stream.map { [$0] } ?? []) + listeners.map(ListenerSource.init)
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

    // MARK: - What sources ask of the loop

    /// Whether the host serves clients (a `--listen` socket is open).
    var servesClients: Bool { sources.contains { $0 is ListenerSource } }

    /// Hands a read's lines to the intake, for the configuration running now.
    func take(_ lines: inout [ReadLine], from origin: LineOrigin, readAt: Date, sequences: [UInt64]? = nil, redelivered: [Bool]? = nil) {
        if intake.take(&lines, from: origin, readAt: readAt, into: generation.core, sequences: sequences, redelivered: redelivered) == .stopReading {
            stop()
        }
    }

    /// A new source (a client a listener accepted), polled from the next turn.
    func add(_ source: any InputSource) {
        if source is ClientSource { clients += 1 }
        sources.append(source)
    }

    /// A new client's scope: ids are unique per key within it (0 is standard input's).
    func nextScope() -> UInt32 {
        lastScope = lastScope == .max ? 1 : lastScope + 1
        return lastScope
    }

    // MARK: - The loop

    private func read() -> InputReader.End {
        while !isStopped.load(ordering: .relaxed) {
            takeOverStaged()
            let reading = pending.hasRoom(onFirstPause: { [logger, pending] in
                logger.log(.info, "reading input paused: accepted jobs without a result take --max-pending-bytes (\(pending.limit)); "
                           + "reading resumes as their results are written")
            }, onRoom: { [weak self] in self?.wake() })
            turn(reading: reading)
            if let stream, let end = stream.end, !servesClients { return end }
        }
        for source in sources { source.stopReading(loop: self) }
        sweepFinished()
        return stream?.end ?? .stopped
    }

    /// One turn: poll every source (and the wake pipe), let the ready ones act, drop the finished.
    private func turn(reading: Bool, until deadline: UInt64? = nil) {
        let polled = sources  // sources added during the turn are polled from the next
        for source in polled { source.prepare(reading: reading, loop: self) }
        var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        for source in polled { descriptors.append(pollfd(fd: source.descriptor, events: source.events(reading: reading, loop: self), revents: 0)) }
        let nearest = (polled.compactMap(\.deadline) + (deadline.map { [$0] } ?? [])).min()
        guard case .success(let ready) = Syscall.poll(&descriptors, milliseconds: Syscall.pollMilliseconds(until: nearest)), ready > 0 else { return }
        if descriptors[0].revents != 0 { drainWakePipe() }
        if isStopped.load(ordering: .relaxed), reading { return }
        for (offset, source) in polled.enumerated() where descriptors[offset + 1].revents != 0 {
            source.ready(descriptors[offset + 1].revents, reading: reading, loop: self)
        }
        sweepFinished()
    }

    /// A staged configuration (a reload) becomes the one jobs go to, between two reads.
    private func takeOverStaged() {
        guard generations.isStaged else { return }
        generation = generations.switchIfStaged(describe: ReloadReport.describe)
        reloads.didSwitch()
    }

    private func sweepFinished() {
        sources.removeAll { source in
            guard source.isFinished else { return false }
            source.close(loop: self)
            if source is ClientSource { clients -= 1 }
            return true
        }
    }

    /// Reading has ended: only clients remain, each closed once its results are written, or
    /// when the grace after the drain runs out.
    private func serveUntilClosed() {
        while !sources.isEmpty {
            let deadline = finishDeadline.load(ordering: .relaxed)
            if deadline != 0, Syscall.monotonicNanoseconds() >= deadline {
                logger.log(.warning, "closing \(HostSession.count(clients, "client")) that did not read every result in time; "
                           + "the results not written are counted as orphaned")
                for source in sources { source.abandon() }
                sweepFinished()
                break
            }
            turn(reading: false, until: deadline == 0 ? nil : deadline)
        }
        closed.happen()
    }

    private func drainWakePipe() {
        var bytes = [UInt8](repeating: 0, count: 256)
        while Glibc.read(wakeRead, &bytes, bytes.count) > 0 {}
    }
}
