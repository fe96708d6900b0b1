import Testing

@testable import BatchmanHost

/// The scale-out's pure parts: the partition table's state machine, the lease book's clock,
/// the fair share.
@Suite struct PartitionTableTests {
    static let valid: UInt64 = 1_000

    @Test func jobsAreAcknowledgedOnlyUnderTheLeaseTheyWereFetchedUnder() {
        var table = PartitionTable(batch: 4, cap: 8)
        table.acquired(3, generation: 17, consumer: "jobs-p3-17", validUntil: Self.valid)
        #expect(table.delivered(partition: 3, generation: 17, sequence: 100, replyTo: "ack-100", now: 1) == .submit)
        #expect(table.delivered(partition: 3, generation: 17, sequence: 100, replyTo: "ack-100b", now: 2) == .running)  // redelivered
        #expect(table.delivered(partition: 3, generation: 16, sequence: 101, replyTo: "old", now: 2) == .dropped)  // an older pull
        #expect(table.delivered(partition: 4, generation: 17, sequence: 102, replyTo: "x", now: 2) == .dropped)  // not owned
        #expect(table.inFlight == 1)
        #expect(table.answered(100, now: 3) == PartitionTable.Answered(acknowledge: "ack-100", drained: nil, wantsPull: false))
        #expect(table.answered(100, now: 3) == PartitionTable.Answered(acknowledge: nil, drained: nil))  // once

        // Past the lease's sure time, a result stored is acknowledged only once the lease is renewed.
        #expect(table.delivered(partition: 3, generation: 17, sequence: 103, replyTo: "ack-103", now: 4) == .submit)
        #expect(table.answered(103, now: Self.valid) == PartitionTable.Answered(acknowledge: nil, drained: nil))
        #expect(table.renewed(3, validUntil: 2 * Self.valid) == ["ack-103"])
        #expect(table.renewed(3, validUntil: 2 * Self.valid).isEmpty)

        // The lease lost: nothing fetched under it is acknowledged, nothing new taken.
        #expect(table.delivered(partition: 3, generation: 17, sequence: 104, replyTo: "ack-104", now: 5) == .submit)
        _ = table.lose(3)
        #expect(table.answered(104, now: 6) == PartitionTable.Answered(acknowledge: nil, drained: nil))
        #expect(table.delivered(partition: 3, generation: 17, sequence: 105, replyTo: "ack-105", now: 6) == .dropped)
        #expect(table.inFlight == 0)
    }

    @Test func aJobStillRunningWhenItsPartitionIsTakenAgainBelongsToTheNewLease() {
        var table = PartitionTable(batch: 4, cap: 8)
        table.acquired(0, generation: 5, consumer: "c5", validUntil: Self.valid)
        #expect(table.delivered(partition: 0, generation: 5, sequence: 9, replyTo: "old", now: 1) == .submit)
        table.acquired(0, generation: 8, consumer: "c8", validUntil: Self.valid)  // released and taken again
        #expect(table.delivered(partition: 0, generation: 8, sequence: 9, replyTo: "new", now: 2) == .running)
        #expect(table.partitions[0]?.inFlight == 1)
        #expect(table.answered(9, now: 3).acknowledge == "new")
    }

    @Test func drainingReleasesOnceTheLastJobIsAnswered() {
        var table = PartitionTable(batch: 4, cap: 8)
        table.acquired(1, generation: 2, consumer: "c", validUntil: Self.valid)
        #expect(table.drain(1) == true)  // nothing in flight
        table.acquired(1, generation: 3, consumer: "c", validUntil: Self.valid)
        _ = table.delivered(partition: 1, generation: 3, sequence: 1, replyTo: "a", now: 1)
        _ = table.delivered(partition: 1, generation: 3, sequence: 2, replyTo: "b", now: 1)
        #expect(table.drain(1) == false)
        #expect(table.delivered(partition: 1, generation: 3, sequence: 3, replyTo: "c", now: 1) == .dropped)  // no more taken
        #expect(table.pullsWanted(now: 2).isEmpty)
        #expect(table.answered(1, now: 2).drained == nil)
        #expect(table.abandoned(2) == 1)  // a result not stored: let go, and the partition is drained
        #expect(table.drainedPartitions == [1])
        table.released(1)
        #expect(table.partitions.isEmpty)
    }

    @Test func pullsGoOutWhileThereIsRoomAndTheLeaseIsSure() {
        var table = PartitionTable(batch: 4, cap: 8)
        table.acquired(0, generation: 1, consumer: "c0", validUntil: Self.valid)
        table.acquired(1, generation: 1, consumer: "c1", validUntil: 10)
        let wanted = table.pullsWanted(now: 20)
        #expect(wanted == [PartitionTable.PullRequest(partition: 0, generation: 1, consumer: "c0", batch: 4)])  // 1's lease is not sure
        #expect(table.pullSent(wanted[0], token: 7, deadline: 500) == nil)
        #expect(table.pullsWanted(now: 21).isEmpty)  // one pull out at a time
        for sequence in UInt64(1)...4 { _ = table.delivered(partition: 0, generation: 1, sequence: sequence, replyTo: "r", now: 22) }
        #expect(table.partitions[0]?.pull == nil)  // delivered in full
        #expect(table.pullsWanted(now: 23) == [PartitionTable.PullRequest(partition: 0, generation: 1, consumer: "c0", batch: 4)])
        _ = table.pullSent(table.pullsWanted(now: 23)[0], token: 8, deadline: 500)
        for sequence in UInt64(5)...8 { _ = table.delivered(partition: 0, generation: 1, sequence: sequence, replyTo: "r", now: 24) }
        #expect(table.pullsWanted(now: 25).isEmpty)  // 8 in flight: the cap
        #expect(table.answered(1, now: 26).wantsPull == false)
        #expect(table.answered(2, now: 26).wantsPull == true)  // room for half a batch: wake the loop
        #expect(table.pullsWanted(now: 27) == [PartitionTable.PullRequest(partition: 0, generation: 1, consumer: "c0", batch: 2)])
        // A pull past its deadline (lost with a server) is replaced.
        _ = table.pullSent(table.pullsWanted(now: 27)[0], token: 9, deadline: 30)
        #expect(table.pullsWanted(now: 31).count == 1)
        #expect(table.pullEnded(partition: 0, token: 9) == true)
        #expect(table.pullEnded(partition: 0, token: 9) == false)
    }

    @Test func jobsRunningLongAreSaidToBeInProgress() {
        var table = PartitionTable(batch: 4, cap: 8)
        table.acquired(0, generation: 1, consumer: "c", validUntil: Self.valid)
        _ = table.delivered(partition: 0, generation: 1, sequence: 1, replyTo: "early", now: 10)
        _ = table.delivered(partition: 0, generation: 1, sequence: 2, replyTo: "late", now: 50)
        #expect(table.inProgress(untouchedSince: 40, now: 60) == ["early"])
        #expect(table.inProgress(untouchedSince: 40, now: 70).isEmpty)  // said at 60
    }

    @Test func aLeaseExpiresAfterItsTimeUnchangedByThisHostsClock() {
        var book = LeaseBook(ttlNanoseconds: 100)
        book.observe("lease 0", revision: 7, now: 1000)
        #expect(!book.isExpired("lease 0", now: 1099))
        #expect(book.isExpired("lease 0", now: 1100))
        book.observe("lease 0", revision: 8, now: 1150)  // renewed: the wait starts again
        #expect(!book.isExpired("lease 0", now: 1200))
        book.observe("lease 0", revision: 8, now: 1240)
        #expect(book.isExpired("lease 0", now: 1250))
        book.observe("lease 0", revision: nil, now: 1260)
        #expect(!book.isExpired("lease 0", now: 9999))  // no record: nothing to expire
    }

    @Test func fairShares() {
        #expect(FairShare.target(partitions: 16, liveHosts: 3) == 6)
        #expect(FairShare.target(partitions: 16, liveHosts: 2) == 8)
        #expect(FairShare.target(partitions: 16, liveHosts: 0) == 16)
        #expect(FairShare.target(partitions: 2, liveHosts: 5) == 1)
        #expect(FairShare.preference(partitions: 6, hostIndex: 1, liveHosts: 3) == [2, 3, 4, 5, 0, 1])
        #expect(Set(FairShare.preference(partitions: 16, hostIndex: 2, liveHosts: 3)) == Set(0..<16))
    }
}
