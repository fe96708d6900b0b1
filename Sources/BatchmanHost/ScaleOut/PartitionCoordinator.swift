import Batchman
import BatchmanNATS
import Dispatch
import FoundationEssentials
import Synchronization

/// Decides which partitions this host owns, on a thread of its own, one tick at a time:
/// announces the host, sees who else is alive, renews its leases (losing one it cannot
/// renew in time), releases the partitions it has drained, hands over what is beyond its fair
/// share, and takes free or expired leases up to it (or the `--partitions` list).
///
/// Taking a partition makes a fresh consumer at the last one's ack floor + 1, and deletes the
/// last one: the old owner, if it still runs, can neither fetch nor acknowledge there again.
final class PartitionCoordinator: @unchecked Sendable {
    // @unchecked: every var is the coordinator thread's own.
    private let scaleOut: ScaleOut
    private var book: LeaseBook
    /// The revision of each owned lease now, and when its last renewal was sent.
    private var revisions: [Int: UInt64] = [:]
    /// The revision a lease had when this host gave it up for want of a renewal in time: if it
    /// still has it, nobody took the partition, and this host may take it back at once.
    private var abandonedRevisions: [Int: UInt64] = [:]
    /// Per partition: when a takeover first waited for its last consumer to answer (see
    /// ``ConsumerTakeover``); it stops waiting after ``consumerWaitLimit``.
    private var waitingForConsumer: [Int: UInt64] = [:]
    static let consumerWaitLimit: UInt64 = 60 * 1_000_000_000
    private var ticks = 0
    private var storeStall = StoreStallWatch()
    private var liveHosts: [String] = []
    private var lastAnnounceFailure: String?
    private let ttl: UInt64
    private let tick: UInt64
    /// KV requests wait at most half a lease (the partitions' own deadlines fence them
    /// meanwhile, whatever the coordinator is waiting for).
    private let kv: KeyValueBucket

    init(scaleOut: ScaleOut) {
        self.scaleOut = scaleOut
        ttl = UInt64(scaleOut.options.leaseSeconds) * 1_000_000_000
        tick = max(200_000_000, ttl / 5)
        book = LeaseBook(ttlNanoseconds: ttl)
        var jetStream = scaleOut.jetStream
        jetStream.timeout = .nanoseconds(Int64(min(ttl / 2, 2_000_000_000)))
        kv = KeyValueBucket(jetStream: jetStream, name: scaleOut.bucket.name)
    }

    private var layout: ScaleOutLayout { scaleOut.layout }
    private var logger: BatchmanLogger { scaleOut.logger }

    func start() {
        DedicatedThread.start(name: "batchman-nats-partitions") { [self] in run() }
    }

    private func run() {
        while true {
            let now = ScaleOutClock.now()
            let stopping = scaleOut.isStopping.load(ordering: .relaxed)
            if stopping { drainAll() }
            announce(stopping: stopping)
            renew(now: now)
            // A renewed lease may let a partition fetch again.
            scaleOut.wakeLoop()
            releaseDrained()
            // Done once no partition is held and every job fetched (a lost partition's too) has
            // its result stored or let go.
            if stopping, scaleOut.table.withLock({ $0.partitions.isEmpty && $0.inFlight == 0 }) {
                leave()
                return
            }
            if !stopping {
                observeHosts(now: now)
                // With a fair share, hosts started together first see each other (two ticks);
                // a static list needs nobody.
                if case .list = scaleOut.options.partitions { rebalance(now: now) } else if ticks >= 2 { rebalance(now: now) }
            }
            for reply in scaleOut.table.withLock({ $0.inProgress(untouchedSince: now &- UInt64(ScaleOut.ackWaitSeconds / 3) * 1_000_000_000, now: now) }) {
                scaleOut.jetStream.acknowledge(reply, .inProgress)
            }
            watchStores()
            ticks += 1
            _ = scaleOut.coordinatorNudge.wait(timeout: .now() + .nanoseconds(Int(tick)))
        }
    }

    /// Says when results stop being stored (every retry times out) and when they are again.
    private func watchStores() {
        let now = JetStreamPublisher.now()
        let unstored = scaleOut.publisher.unstored(now: now)
        switch storeStall.observe(count: unstored.count, oldest: unstored.oldestNanoseconds, now: now) {
        case .none:
            break
        case .stalled(let count, let seconds):
            logger.log(.warning, "nats: \(HostSession.count(count, "result")) not stored yet, the oldest sent \(seconds) s ago: the results stream "
                       + "stores nothing (has it lost its quorum or its leader?); their jobs stay unacknowledged, and the host keeps retrying")
        case .storing(let seconds):
            logger.log(.info, "nats: results are stored again, after \(seconds) s")
        }
    }

    // MARK: - Hosts

    private func announce(stopping: Bool) {
        guard !stopping else { return }
        let owned = scaleOut.table.withLock { $0.partitions.keys.sorted() }
        let value = JetStream.encode(HostRecord(host: scaleOut.name, partitions: owned))
        switch Result(catching: { () throws(NATSError) in try kv.put(layout.hostKey(scaleOut.name), value) }) {
        case .success:
            if lastAnnounceFailure != nil { logger.log(.info, "nats: announcing this host works again") }
            lastAnnounceFailure = nil
        case .failure(let error):
            if lastAnnounceFailure == nil { logger.log(.warning, "nats: cannot announce this host (\(error)); trying every tick") }
            lastAnnounceFailure = error.description
        }
    }

    struct HostRecord: Codable {
        var host: String
        var partitions: [Int]
    }

    struct LeaseRecord: Codable {
        var host: String
    }

    /// Who is alive: announcements renewed within the lease time, as this host sees them.
    private func observeHosts(now: UInt64) {
        guard let keys = try? kv.keys(under: layout.hostKeyPrefix) else { return }
        var live = [scaleOut.name]
        let mine = layout.hostKey(scaleOut.name)
        for full in keys where full != mine {
            guard case .success(let entry) = Result(catching: { () throws(NATSError) in try kv.get(full) }) else { continue }
            // The clock read after the reply, never the tick's: the revision was written before
            // the reply came, so expiry counts from no earlier than that (see LeaseBook).
            let seen = ScaleOutClock.now()
            book.observe("host " + full, revision: entry?.revision, now: seen)
            guard let entry, !entry.isDeleted else { continue }
            if book.isExpired("host " + full, now: seen) {
                // A host that stopped without leaving (killed): forget it, if nobody renewed it meanwhile.
                try? kv.purge(full, expecting: entry.revision)
                continue
            }
            live.append((try? JSONDecoder().decode(HostRecord.self, from: Data(entry.value)))?.host ?? String(full.dropFirst(layout.hostKeyPrefix.count)))
        }
        live.sort()
        if live != liveHosts {
            liveHosts = live
            let share = FairShare.target(partitions: scaleOut.partitionCount, liveHosts: live.count)
            let what = if case .list(let list) = scaleOut.options.partitions { "owning --partitions \(list.map(String.init).joined(separator: ","))" }
                else { "fair share \(share) of \(scaleOut.partitionCount) partitions" }
            logger.log(.info, "nats: \(HostSession.count(live.count, "host")) alive (\(live.joined(separator: ", "))): \(what)")
        }
    }

    /// The host leaves: its announcement goes, so the others rebalance at once.
    private func leave() {
        try? scaleOut.jetStream.purge(stream: kv.streamName, subject: kv.subject(layout.hostKey(scaleOut.name)))
        logger.log(.info, "nats: every partition released; \(scaleOut.name) left")
        scaleOut.isFinished.store(true, ordering: .relaxed)
        scaleOut.wakeLoop()
    }

    // MARK: - Leases

    private func leaseValue() -> [UInt8] { JetStream.encode(LeaseRecord(host: scaleOut.name)) }

    /// Until when a lease renewed (or taken) by a request sent at `sent` is surely this host's.
    private func validUntil(sent: UInt64) -> UInt64 { sent + ttl - tick }

    private func renew(now: UInt64) {
        for partition in scaleOut.table.withLock({ $0.partitions.keys.sorted() }) {
            guard let revision = revisions[partition] else { continue }
            let sent = ScaleOutClock.now()
            switch Result(catching: { () throws(NATSError) in try kv.update(layout.leaseKey(partition), leaseValue(), expecting: revision) }) {
            case .success(let next):
                revisions[partition] = next
                let held = scaleOut.table.withLock { $0.renewed(partition, validUntil: validUntil(sent: sent)) }
                for reply in held { scaleOut.jetStream.acknowledge(reply) }
            case .failure(let error) where KeyValueBucket.isConflict(error):
                // A renewal whose acknowledgement was lost moved the revision on: the record
                // still names this host, so nobody took it (a taker writes its own name).
                if let current = try? kv.get(layout.leaseKey(partition)), !current.isDeleted,
                   (try? JSONDecoder().decode(LeaseRecord.self, from: Data(current.value)))?.host == scaleOut.name {
                    revisions[partition] = current.revision
                    continue
                }
                lose(partition, "another host holds its lease now")
            case .failure(let error):
                let valid = scaleOut.table.withLock { $0.partitions[partition]?.validUntil } ?? 0
                if ScaleOutClock.now() >= valid { lose(partition, "its lease could not be renewed in time (\(error))", keeping: revision) }
            }
        }
    }

    private func lose(_ partition: Int, _ why: String, keeping revision: UInt64? = nil) {
        if let sid = scaleOut.table.withLock({ $0.lose(partition) }) { scaleOut.connection.unsubscribe(sid) }
        revisions.removeValue(forKey: partition)
        abandonedRevisions[partition] = revision
        scaleOut.counters.leasesLost.add(1, ordering: .relaxed)
        logger.log(.warning, "nats: partition \(partition): lease lost: \(why); fetching stopped there and nothing more is acknowledged "
                   + "(its jobs in flight are delivered again to the next owner)")
    }

    private func drainAll() {
        scaleOut.table.withLock { table in
            for partition in table.partitions.keys where table.partitions[partition]?.phase == .fetching { _ = table.drain(partition) }
        }
    }

    private func releaseDrained() {
        let drained = scaleOut.table.withLock { $0.drainedPartitions }
        guard !drained.isEmpty else { return }
        // The acknowledgements sent reach the server before the next owner reads the ack floor.
        try? scaleOut.connection.flush(timeout: .seconds(2))
        for partition in drained {
            guard let revision = revisions[partition] else {
                scaleOut.table.withLock { $0.released(partition) }
                continue
            }
            switch Result(catching: { () throws(NATSError) in try kv.purge(layout.leaseKey(partition), expecting: revision) }) {
            case .success:
                logger.log(.info, "nats: partition \(partition): drained and released")
            case .failure(let error) where KeyValueBucket.isConflict(error):
                logger.log(.warning, "nats: partition \(partition): drained; its lease was another host's already")
            case .failure(let error):
                logger.log(.warning, "nats: partition \(partition): drained, but releasing its lease failed (\(error)); trying again")
                continue
            }
            revisions.removeValue(forKey: partition)
            scaleOut.table.withLock { $0.released(partition) }
        }
    }

    private func rebalance(now: UInt64) {
        let count = scaleOut.partitionCount
        let owned = scaleOut.table.withLock { $0.partitions }
        let wanted: [Int]
        var target: Int
        switch scaleOut.options.partitions {
        case .list(let list):
            wanted = list
            target = list.count
        case .auto:
            let index = liveHosts.firstIndex(of: scaleOut.name) ?? 0
            wanted = FairShare.preference(partitions: count, hostIndex: index, liveHosts: liveHosts.count)
            target = FairShare.target(partitions: count, liveHosts: liveHosts.count)
            let fetching = wanted.reversed().filter { owned[$0]?.phase == .fetching }
            if fetching.count > target {
                for partition in fetching.prefix(fetching.count - target) {
                    _ = scaleOut.table.withLock { $0.drain(partition) }
                    logger.log(.info, "nats: partition \(partition): handing over (fair share \(target) of \(count) with "
                               + "\(HostSession.count(liveHosts.count, "host")) alive); draining its jobs in flight first")
                }
                scaleOut.coordinatorNudge.signal()
            }
        }
        var holding = owned.count
        // Renewals come first in every tick: the reads of leases only watched stop at half a
        // tick, so that a slow server cannot stretch the ticks past the leases' time.
        let budget = ScaleOutClock.now() + tick / 2
        for partition in wanted where owned[partition] == nil {
            if holding < target {
                if acquire(partition, now: now) { holding += 1 }
            } else if ScaleOutClock.now() < budget {
                observeLease(partition, now: now)
            }
        }
    }

    /// Notes a lease's revision without wanting it: its expiry is then judged from now, so that
    /// when this host does want it (its owner gone quiet, and so the fair share grown), it need
    /// not wait a whole lease more.
    private func observeLease(_ partition: Int, now: UInt64) {
        let key = layout.leaseKey(partition)
        guard case .success(let entry) = Result(catching: { () throws(NATSError) in try kv.get(key) }) else { return }
        book.observe("lease " + key, revision: entry?.revision, now: ScaleOutClock.now())
    }

    /// Takes `partition`'s lease if it is free or expired; true if taken.
    private func acquire(_ partition: Int, now: UInt64) -> Bool {
        let key = layout.leaseKey(partition)
        guard case .success(let entry) = Result(catching: { () throws(NATSError) in try kv.get(key) }) else { return false }
        let seen = ScaleOutClock.now()  // after the reply: see observeHosts
        book.observe("lease " + key, revision: entry?.revision, now: seen)
        var previous: String?
        // Still at the revision this host left it at: nobody took it meanwhile.
        let ownAbandoned = entry != nil && abandonedRevisions[partition] == entry?.revision
        if let entry, !entry.isDeleted, !ownAbandoned {
            guard book.isExpired("lease " + key, now: seen) else { return false }
            previous = (try? JSONDecoder().decode(LeaseRecord.self, from: Data(entry.value)))?.host ?? "?"
        }
        let sent = ScaleOutClock.now()
        guard let revision = try? kv.create(key, leaseValue(), replacingDeletedAt: entry?.revision ?? 0) else { return false }
        do throws(NATSError) {
            let (start, redeliveredThrough) = try takeOver(partition, revision: revision)
            scaleOut.table.withLock { $0.acquired(partition, generation: revision, consumer: layout.consumerName(partition, revision: revision),
                                                  validUntil: validUntil(sent: sent), redeliveredThrough: redeliveredThrough) }
            revisions[partition] = revision
            abandonedRevisions.removeValue(forKey: partition)
            scaleOut.counters.takeovers.add(1, ordering: .relaxed)
            let from = previous.map { "; taken over from \($0), whose lease expired" } ?? ""
            logger.log(.info, "nats: partition \(partition): acquired (lease revision \(revision)), fetching from stream sequence \(start)\(from)")
            scaleOut.wakeLoop()
            return true
        } catch {
            if let since = waitingForConsumer[partition] {
                // Said once, not at every tick of the wait.
                if since >= sent {
                    logger.log(.info, "nats: partition \(partition): \(error); waiting up to \(Self.consumerWaitLimit / 1_000_000_000) s for it before "
                               + "taking the partition over")
                }
            } else {
                logger.log(.warning, "nats: partition \(partition): lease taken but its consumer could not be made (\(error)); releasing it")
            }
            try? kv.purge(key, expecting: revision)
            return false
        }
    }

    /// Replaces the partition's consumer by a fresh one at the old one's ack floor + 1; returns
    /// the stream sequence it starts at, and the last the old one delivered (jobs up to there
    /// may have reached a plugin already).
    private func takeOver(_ partition: Int, revision: UInt64) throws(NATSError) -> (start: UInt64, redeliveredThrough: UInt64) {
        let jetStream = scaleOut.jetStream
        let stream = layout.jobStream
        let list = try jetStream.consumerList(stream: stream)
        let found = list.consumers.map { ConsumerTakeover.Found(name: $0.name, acknowledgedThrough: $0.acknowledgedThrough, delivered: $0.delivered.stream_seq) }
        let waitedSince = waitingForConsumer[partition]
        let stopWaiting = waitedSince.map { ScaleOutClock.now() - $0 >= Self.consumerWaitLimit } ?? false
        let plan: ConsumerTakeover
        do {
            plan = try ConsumerTakeover.plan(prefix: layout.consumerPrefix(partition), answered: found, missing: list.missing, stopWaiting: stopWaiting)
        } catch {
            if waitedSince == nil { waitingForConsumer[partition] = ScaleOutClock.now() }
            throw error
        }
        waitingForConsumer.removeValue(forKey: partition)
        if stopWaiting {
            logger.log(.warning, "nats: partition \(partition): its last consumer has not answered for \(Self.consumerWaitLimit / 1_000_000_000) s; "
                       + "taking it over from the consumer before (stream sequence \(plan.start)): the jobs since then run again")
        }
        for name in plan.deletions { try jetStream.deleteConsumer(stream: stream, name: name) }
        var config = JetStream.ConsumerConfig(durable: layout.consumerName(partition, revision: revision), filter: layout.partitionFilter(partition))
        if plan.start > 1 {
            config.deliver_policy = "by_start_sequence"
            config.opt_start_seq = plan.start
        }
        config.ack_wait = Int64(ScaleOut.ackWaitSeconds) * 1_000_000_000
        config.max_ack_pending = scaleOut.table.withLock { $0.cap } * 2
        config.max_waiting = 64
        _ = try jetStream.addConsumer(stream: stream, config)
        // Past the wait for a silent last consumer: any job stored by now may have been delivered.
        let redeliveredThrough = plan.latestUnknown ? (try jetStream.streamInfo(stream)?.state.last_seq ?? .max) : plan.redeliveredThrough
        return (plan.start, redeliveredThrough)
    }
}
