@testable import BatchmanHost
import CBatchmanPlugin
import Testing

/// The host reads a worker's outcome log as untrusted input: record by record, each against the batch.
@Suite struct OutcomeLogTests {
    static func record(_ index: UInt32, _ status: Int32, _ data: String, reason: String = "", retryAfter: UInt32 = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        for value in [index, UInt32(bitPattern: status), UInt32(data.utf8.count), retryAfter, UInt32(reason.utf8.count)] {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        return bytes + Array(reason.utf8) + Array(data.utf8)
    }

    func parse(_ bytes: [UInt8], count: Int, maxResultBytes: Int = 1 << 20) -> OutcomeLogParser.Contents {
        bytes.withUnsafeBytes { OutcomeLogParser.parse($0.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, length: $0.count, count: count,
                                                       maxResultBytes: maxResultBytes) }
    }

    @Test func readsEveryRecordOfTheBatch() {
        let log = Self.record(1, BM_OK, "one") + Self.record(0, BM_FAILED, "no")
        #expect(parse(log, count: 2) == .records([.init(index: 1, status: BM_OK, bytes: 0..<3), .init(index: 0, status: BM_FAILED, bytes: 3..<5)],
                                                 bytes: Array("oneno".utf8)))
    }

    @Test func refusesTwoOutcomesForOneJob() {
        #expect(parse(Self.record(0, BM_OK, "") + Self.record(0, BM_OK, ""), count: 2) == .broken("it published two outcomes for job 0"))
    }

    @Test func refusesAnIndexPastTheBatch() {
        #expect(parse(Self.record(2, BM_OK, ""), count: 2) == .broken("it published an outcome for job 2 of a batch of 2"))
    }

    @Test func refusesAnUnknownStatus() {
        #expect(parse(Self.record(0, 7, ""), count: 1) == .broken("it published an outcome with status 7 for job 0"))
    }

    @Test func refusesARecordThatRunsPastWhatWasPublished() {
        #expect(parse(Array(Self.record(0, BM_OK, "abc").dropLast()), count: 1) == .broken("an outcome record runs past what it published"))
        #expect(parse(Array(Self.record(0, BM_OK, "").prefix(5)), count: 1) == .broken("it published part of an outcome record"))
    }

    @Test func refusesMoreRecordsThanJobs() {
        #expect(parse(Self.record(0, BM_OK, "") + Self.record(1, BM_OK, ""), count: 1)
                == .broken("it published more outcomes than the batch has jobs (1)"))
    }

    @Test func refusesOutcomesPastMaxResultBytes() {
        let big = String(repeating: "x", count: 600)
        #expect(parse(Self.record(0, BM_OK, big), count: 1, maxResultBytes: 100) == .broken("its outcomes passed the batch's maxResultBytes (100)"))
    }

    @Test func readsAReasonAndARetryAfter() {
        let log = Self.record(0, BM_RETRY, "locked", reason: "busy", retryAfter: 2000) + Self.record(1, BM_FAILED, "dup", reason: "constraint")
        guard case .records(let records, let bytes) = parse(log, count: 2) else {
            Issue.record("not read")
            return
        }
        #expect(records.map(\.detail) == [.init(reason: "busy", retryAfterMilliseconds: 2000), .init(reason: "constraint", retryAfterMilliseconds: 0)])
        #expect(String(decoding: bytes[records[0].bytes], as: UTF8.self) == "locked")
    }

    @Test func refusesAReasonOrRetryAfterThatEmitDetailedRefuses() {
        let refused = "it published a reason or retry-after for job 0 that emit_detailed refuses"
        #expect(parse(Self.record(0, BM_FAILED, "", reason: "no spaces"), count: 1) == .broken(refused))
        #expect(parse(Self.record(0, BM_OK, "", reason: "ok"), count: 1) == .broken(refused))
        #expect(parse(Self.record(0, BM_FAILED, "", retryAfter: 5), count: 1) == .broken(refused))
        #expect(parse(Self.record(0, BM_RETRY, "", retryAfter: 4_000_000), count: 1) == .broken(refused))
        #expect(parse(Self.record(0, BM_FAILED, "", reason: String(repeating: "a", count: 33)), count: 1)
                == .broken("it published a reason of 33 bytes for job 0"))
    }
}
