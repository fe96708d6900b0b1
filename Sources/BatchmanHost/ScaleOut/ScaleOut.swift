import Batchman
import BatchmanNATS
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// A host's part in a scale-out (`--nats`): the connection, the partitions it owns
/// (``PartitionTable``), the jobs their pull requests delivered and the loop has yet to take,
/// and the results publisher. The coordinator (``PartitionCoordinator``) decides what to own;
/// ``NATSSource`` takes the deliveries into the core; ``NATSResults`` stores results and
/// acknowledges their jobs.
///
/// Threads: the connection's reader hands deliveries and acknowledgements in; the input loop
/// takes deliveries and sends pull requests; the coordinator renews, takes and releases leases.
final class ScaleOut: Sendable {
    let options: NATSRunOptions
    let name: String
    let layout: ScaleOutLayout
    let partitionCount: Int
    let connection: NATSConnection
    let jetStream: JetStream
    let publisher: JetStreamPublisher
    let bucket: KeyValueBucket
    let logger: BatchmanLogger
    let table: Mutex<PartitionTable>
    let counters = Counters()
    /// How long the server waits for an acknowledgement before delivering again; jobs still
    /// running are said to be in progress well before.
    static let ackWaitSeconds = 30
    /// How long a pull request waits for jobs on the server.
    static let pullExpiry = Duration.seconds(2)

    /// A job a pull request delivered, for the loop to take.
    struct Delivered {
        var partition: Int
        var sequence: UInt64
        var payload: [UInt8]
        /// Delivered before: by this consumer (a redelivery) or by the previous owner's.
        var redelivered = false
    }

    private let inbox = Mutex<[Delivered]>([])
    private let loopWake = Mutex<Callback?>(nil)
    let isStopping = Atomic<Bool>(false)
    let isFinished = Atomic<Bool>(false)

    final class Counters: Sendable {
        let fetched = Atomic<Int>(0)
        let stored = Atomic<Int>(0)
        let storeFailures = Atomic<Int>(0)
        let takeovers = Atomic<Int>(0)
        let leasesLost = Atomic<Int>(0)
    }

    /// The scope of a partition's jobs: ids are unique per key within a partition, never
    /// colliding with a client's (whose scopes count up from 1).
    static func scope(ofPartition partition: Int) -> UInt32 { 0x8000_0000 | UInt32(partition) }
    static func partition(ofScope scope: UInt32) -> Int? { scope & 0x8000_0000 != 0 ? Int(scope & 0x7FFF_FFFF) : nil }

    /// Connects and reads the partition count `batchman nats setup` stored.
    init(options: NATSRunOptions, logger: BatchmanLogger) throws(HostError) {
        self.options = options
        self.logger = logger
        self.name = options.name ?? Self.defaultName()
        self.layout = ScaleOutLayout(prefix: options.prefix)
        // Jobs in flight per partition at most: two fetches' worth, so one is fetched while the
        // other runs.
        table = Mutex(PartitionTable(batch: options.fetchBatch, cap: options.fetchBatch * 2))
        connection = try ScaleOutConnection.connect(options.servers, name: "batchman \(name)", logger: logger)
        jetStream = JetStream(connection)
        do {
            bucket = try ScaleOutLayout.openBucket(jetStream)
            partitionCount = try layout.readConfig(bucket).partitions
            guard try jetStream.streamInfo(layout.jobStream) != nil, try jetStream.streamInfo(ScaleOutLayout.resultStream) != nil else {
                throw HostError(.configuration, "nats: stream \(layout.jobStream) or \(ScaleOutLayout.resultStream) is missing; run batchman nats setup first")
            }
        } catch let error as HostError {
            connection.close()
            throw error
        } catch let error as NATSError {
            connection.close()
            throw ScaleOutConnection.failure(error, "looking up the streams")
        } catch {
            connection.close()
            throw HostError(.runtime, "nats: \(error)")
        }
        let count = partitionCount
        if case .list(let list) = options.partitions, let beyond = list.first(where: { $0 >= count }) {
            connection.close()
            throw HostError(.usage, "--partitions \(beyond): the job stream has partitions 0 to \(count - 1)")
        }
        publisher = JetStreamPublisher(jetStream)
        let server = connection.connectedServer.map { "\($0)" } ?? "NATS"
        logger.log(.info, "nats: connected to \(server) (\(connection.serverInfo.server_name ?? "server") \(connection.serverInfo.version ?? "")) "
                   + "as \(name); \(partitionCount) partitions of \(layout.jobStream)")
    }

    static func defaultName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        let host = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(host.isEmpty ? "localhost" : host):\(getpid())"
    }

    /// A line for the statistics: what this host owns and has in flight.
    var summary: String {
        let (owned, inFlight, pulls) = table.withLock { table in
            (table.partitions.keys.sorted(), table.inFlight, table.partitions.values.filter { $0.pull != nil }.count)
        }
        let list = owned.isEmpty ? "none" : owned.map(String.init).joined(separator: ",")
        return "nats: partitions=\(list) inFlight=\(inFlight) pulls=\(pulls) storing=\(publisher.outstanding) "
            + "fetched=\(counters.fetched.load(ordering: .relaxed)) stored=\(counters.stored.load(ordering: .relaxed)) "
            + "storeFailures=\(counters.storeFailures.load(ordering: .relaxed)) takeovers=\(counters.takeovers.load(ordering: .relaxed)) "
            + "leasesLost=\(counters.leasesLost.load(ordering: .relaxed)) retried=\(publisher.retries)"
    }

    /// The loop to wake when deliveries wait or a partition wants a pull.
    func attach(wake: @escaping @Sendable () -> Void) {
        loopWake.withLock { $0 = Callback(wake) }
    }

    func wakeLoop() {
        loopWake.withLock { $0 }?.call()
    }

    /// The deliveries waiting, taken.
    func takeDelivered() -> [Delivered] {
        inbox.withLock { waiting in
            defer { waiting.removeAll(keepingCapacity: true) }
            return waiting
        }
    }

    // MARK: - Pull requests

    /// Sends the pull requests the owned partitions have room for (on the loop's thread). Each
    /// has a subscription of its own: deliveries come on their jobs' subjects, with the
    /// subscription's id, and only the server's status messages on the reply subject itself.
    func sendPulls() {
        let now = ScaleOutClock.now()
        for request in table.withLock({ $0.pullsWanted(now: now) }) {
            let number = pullNumber.add(1, ordering: .relaxed).newValue
            let reply = "\(connection.inboxPrefix)pull.\(number)"
            let sid = connection.subscribe(reply) { [weak self] in self?.pulled($0, request) }
            let deadline = now + UInt64(Self.pullExpiry.components.seconds + 3) * 1_000_000_000
            let replaced = table.withLock { $0.pullSent(request, token: sid, deadline: deadline) }
            if let replaced { connection.unsubscribe(replaced) }
            jetStream.pull(stream: layout.jobStream, consumer: request.consumer, batch: request.batch, expires: Self.pullExpiry, replyTo: reply)
        }
    }

    private let pullNumber = Atomic<UInt64>(0)

    /// A message of a pull request (on the connection's reader thread).
    private func pulled(_ message: NATSMessage, _ request: PartitionTable.PullRequest) {
        let sid = message.sid
        if let status = message.status {
            guard status != 100 else { return }  // an idle heartbeat
            // 408: the request expired; 404: nothing to deliver; 409: the consumer went, or a
            // limit was hit. The loop sends the next when there is room.
            if table.withLock({ $0.pullEnded(partition: request.partition, token: sid) }) { wakeLoop() }
            connection.unsubscribe(sid)
            return
        }
        guard let replyTo = message.replyTo, let sequence = JetStream.streamSequence(ofReply: replyTo) else { return }
        let (delivery, pullOver, redelivered) = table.withLock { table in
            let keyToken = message.subject.split(separator: ".").last ?? ""
            let delivery = table.delivered(partition: request.partition, generation: request.generation, sequence: sequence, replyTo: replyTo,
                                           keyToken: keyToken, now: ScaleOutClock.now())
            let redelivered = sequence <= (table.partitions[request.partition]?.redeliveredThrough ?? 0)
            return (delivery, table.partitions[request.partition]?.pull?.token != sid, redelivered)
        }
        if pullOver { connection.unsubscribe(sid) }
        guard delivery == .submit else {
            if pullOver { wakeLoop() }
            return
        }
        counters.fetched.add(1, ordering: .relaxed)
        let wasEmpty = inbox.withLock { waiting in
            waiting.append(Delivered(partition: request.partition, sequence: sequence, payload: message.payload,
                                     redelivered: redelivered || (JetStream.deliveryCount(ofReply: replyTo) ?? 1) > 1))
            return waiting.count == 1
        }
        if wasEmpty || pullOver { wakeLoop() }
    }

    // MARK: - Results

    /// Whether the result of the job fetched as `sequence` may be stored now: yes while its
    /// lease is surely this host's; not yet while the lease is being renewed late (a server
    /// electing a leader); never once the lease is lost.
    func publishDecision(_ sequence: UInt64) -> JetStreamPublisher.Decision {
        let now = ScaleOutClock.now()
        return table.withLock { table in
            guard let job = table.job(sequence), let owned = table.partitions[job.partition], owned.generation == job.generation else { return .drop }
            return now < owned.validUntil ? .send : .hold
        }
    }

    /// A job's result is stored: acknowledge it (if its lease is still this host's).
    func stored(_ sequence: UInt64) {
        counters.stored.add(1, ordering: .relaxed)
        let now = ScaleOutClock.now()
        let answered = table.withLock { $0.answered(sequence, now: now) }
        if let reply = answered.acknowledge { jetStream.acknowledge(reply) }
        if answered.drained != nil { coordinatorNudge.signal() }
        if answered.wantsPull { wakeLoop() }
    }

    /// A job's result could not be stored: it goes unacknowledged, to be delivered again.
    func notStored(_ sequence: UInt64) {
        if table.withLock({ $0.abandoned(sequence) }) != nil { coordinatorNudge.signal() }
        wakeLoop()  // rare: room for a pull, maybe
    }

    /// Wakes the coordinator before its tick: a partition drained, a stop.
    let coordinatorNudge = DispatchSemaphore(value: 0)

    // MARK: - Stopping

    /// Stops fetching: every partition drains, its lease is released, then the host's
    /// announcement goes.
    func stop() {
        guard !isStopping.exchange(true, ordering: .relaxed) else { return }
        // At once, not at the coordinator's next tick: from here every delivery is dropped.
        table.withLock { table in
            for partition in table.partitions.keys { _ = table.drain(partition) }
        }
        // Delivered and not yet taken: let go unacknowledged, for the next owner.
        for delivered in takeDelivered() { notStored(delivered.sequence) }
        coordinatorNudge.signal()
    }

    /// The drain's grace is over: whatever is not stored stays unacknowledged.
    func abandon() {
        publisher.close()
        isFinished.store(true, ordering: .relaxed)
    }

    func close() {
        publisher.close()
        connection.close()
    }
}

enum ScaleOutClock {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
