@testable import BatchmanHost
import Glibc
import Testing

/// The spool's decisions, event by event: where lines go, when reading pauses, when the ledger
/// is written, and when a segment may go.
@Suite struct SpoolStateMachineTests {
    static let directory = "/spool"
    static let second: UInt64 = 1_000_000_000

    func machine(policy: SpoolSyncPolicy = .interval, maxBytes: Int = 1000, segmentBytes: Int = 100,
                 segments: [SpoolStateMachine.Segment] = [], nextSequence: UInt64 = 1) -> SpoolStateMachine {
        SpoolStateMachine(directory: Self.directory, policy: policy, maxBytes: maxBytes, segmentBytes: segmentBytes, ledger: SpoolLedger(),
                          segments: segments, nextSequence: nextSequence)
    }

    func segment(_ number: UInt64) -> String { SpoolFiles.segmentPath(in: Self.directory, number: number) }

    /// Appends `count` lines of `bytes` and returns the step the append took.
    @discardableResult
    func append(_ machine: inout SpoolStateMachine, count: Int, bytes: Int, inputEnd: UInt64 = 0) -> SpoolStateMachine.AppendStep {
        let step = machine.beginAppend(bytes: bytes)
        if case .write = step { machine.appended(count: count, bytes: bytes, inputEnd: inputEnd) }
        return step
    }

    @Test func theFirstAppendMakesASegmentAndTheNextOnesUseIt() {
        var spool = machine()
        #expect(append(&spool, count: 2, bytes: 40) == .write(firstSequence: 1, newSegment: segment(1)))
        #expect(append(&spool, count: 1, bytes: 40) == .write(firstSequence: 3, newSegment: nil))
        #expect(spool.active == .init(path: segment(1), lastSequence: 3, bytes: 80))
        #expect(spool.liveBytes == 80)
    }

    @Test func aFullSegmentIsSealedAndTheNextAppendStartsAnother() {
        var spool = machine()
        append(&spool, count: 3, bytes: 120)
        #expect(append(&spool, count: 1, bytes: 10) == .write(firstSequence: 4, newSegment: segment(4)))
        #expect(spool.sealed == [.init(path: segment(1), lastSequence: 3, bytes: 120)])
    }

    @Test func readingPausesWhileTheSpoolHoldsMaxBytes() {
        var spool = machine(maxBytes: 100, segmentBytes: 1000)
        append(&spool, count: 5, bytes: 100)
        #expect(spool.beginAppend(bytes: 10) == .pause(.full))
    }

    @Test func theInputOffsetMovesOnlyWithWrittenLines() {
        var spool = machine()
        _ = spool.beginAppend(bytes: 10)  // begun, never written
        #expect(spool.ledger.inputOffset == 0)
        append(&spool, count: 1, bytes: 10, inputEnd: 77)
        #expect(spool.ledger.inputOffset == 77)
    }

    @Test func doneLinesAreWrittenToTheLedgerAtMostOnceEveryTenMilliseconds() {
        var spool = machine(policy: .never)
        append(&spool, count: 4, bytes: 40)
        let first = spool.markDone([1], now: 100)
        #expect(first.count == 1)
        guard case .persistLedger(let write)? = first.first else { Issue.record("no ledger write"); return }
        #expect(spool.markDone([2], now: 200) == [], "one ledger write at a time")
        #expect(spool.persisted(write, result: .success(()), now: 300) == [])
        #expect(spool.markDone([3], now: 400) == [], "within 10 ms of the last")
        let tick = spool.tick(now: 500, everySecond: false)
        guard case .persistLedger(let next)? = tick.first else { Issue.record("the timer writes what changed"); return }
        #expect(SpoolLedger.decode(next.bytes)?.watermark == 3)
    }

    @Test func aSegmentGoesOnlyOnceASyncedLedgerCoversIt() {
        var spool = machine(policy: .interval)
        append(&spool, count: 3, bytes: 120)  // fills segment 1
        append(&spool, count: 1, bytes: 10)   // seals it
        let actions = spool.markDone([1, 2, 3], now: 100)
        guard case .persistLedger(let write)? = actions.first else { Issue.record("no ledger write"); return }
        #expect(write.sync, "it lets a segment go, so it reaches the disk first")
        #expect(write.watermark == 3)
        #expect(spool.persisted(write, result: .success(()), now: 200) == [.delete([.init(path: segment(1), lastSequence: 3, bytes: 120)])])
        spool.deleted(bytes: 120)
        #expect(spool.liveBytes == 10)
    }

    @Test func theActiveSegmentIsSyncedEverySecondWithInterval() {
        var spool = machine(policy: .interval)
        append(&spool, count: 1, bytes: 10)
        #expect(spool.tick(now: Self.second, everySecond: true).contains(.syncActive))
        var never = machine(policy: .never)
        append(&never, count: 1, bytes: 10)
        #expect(!never.tick(now: Self.second, everySecond: true).contains(.syncActive))
    }

    @Test func aFullDiskSealsTheSegmentSoThatItCanGoOnceAnswered() {
        var spool = machine(segmentBytes: 1_000_000)
        append(&spool, count: 2, bytes: 50)
        _ = spool.beginAppend(bytes: 50)
        _ = spool.appendFoundDiskFull(now: 100)
        #expect(spool.phase == .diskFull)
        #expect(spool.sealed == [.init(path: segment(1), lastSequence: 2, bytes: 50)])
        #expect(spool.active == nil)
        #expect(spool.beginAppend(bytes: 50) == .write(firstSequence: 3, newSegment: segment(3)), "the retry starts a new segment")
        _ = spool.appendFoundDiskFull(now: 200)
        #expect(spool.beginAppend(bytes: 50) == .write(firstSequence: 3, newSegment: nil), "an empty one is kept, not made twice")
        spool.appended(count: 1, bytes: 50, inputEnd: 0)
        #expect(spool.phase == .open)
    }

    @Test func aLedgerThatCannotBeWrittenOnAFullDiskLetsTheOldestAnsweredSegmentGo() {
        var spool = machine(policy: .interval)
        append(&spool, count: 3, bytes: 120)
        append(&spool, count: 1, bytes: 10)
        guard case .persistLedger(let write)? = spool.markDone([1, 2, 3], now: 100).first else { Issue.record("no ledger write"); return }
        let actions = spool.persisted(write, result: .failure(.noSpace), now: 200)
        #expect(actions == [.delete([.init(path: segment(1), lastSequence: 3, bytes: 120)])])
        #expect(spool.ledgerFailure == .noSpace)
        guard case .persistLedger(let again)? = spool.tick(now: 300, everySecond: false).first else { Issue.record("it is tried again"); return }
        _ = spool.persisted(again, result: .success(()), now: 400)
        #expect(spool.ledgerFailure == nil)
    }

    @Test func anotherFailureKeepsEverySegment() {
        var spool = machine(policy: .interval)
        append(&spool, count: 3, bytes: 120)
        append(&spool, count: 1, bytes: 10)
        guard case .persistLedger(let write)? = spool.markDone([1, 2, 3], now: 100).first else { Issue.record("no ledger write"); return }
        #expect(spool.persisted(write, result: .failure(Errno(rawValue: EIO)), now: 200) == [])
        #expect(spool.sealed.count == 1)
    }

    @Test func closingWritesTheLastLedgerAndLetsEveryAnsweredSegmentGo() {
        var spool = machine(policy: .always)
        append(&spool, count: 3, bytes: 120)
        append(&spool, count: 1, bytes: 10)
        _ = spool.markDone([1, 2, 3, 4], now: 100)
        let closing = spool.close()
        #expect(closing?.ledger.sync == true)
        #expect(closing?.delete.map(\.path) == [segment(1), segment(4)])
        #expect(spool.beginAppend(bytes: 1) == .closed)
        #expect(spool.close() == nil, "once")
    }

    @Test func segmentsARestartFoundCountAgainstTheBound() {
        let found = [SpoolStateMachine.Segment(path: segment(1), lastSequence: 9, bytes: 900)]
        var spool = machine(maxBytes: 1000, segments: found, nextSequence: 10)
        #expect(spool.liveBytes == 900)
        #expect(append(&spool, count: 1, bytes: 200) == .write(firstSequence: 10, newSegment: segment(10)))
        #expect(spool.beginAppend(bytes: 1) == .pause(.full))
    }
}
