import Batchman
@testable import BatchmanHost
import CBatchmanPlugin
import Testing

/// `emit_detailed`'s checks (ABI 1.1), as the collector applies them to what a plugin passes.
@Suite struct EmitCollectorTests {
    func emit(_ collector: EmitCollector, _ index: Int, _ status: Int32, _ data: String, reason: String, after milliseconds: UInt64 = 0) -> Int32 {
        var data = data, reason = reason
        return data.withUTF8 { data in
            reason.withUTF8 { reason in
                collector.emitDetailed(index: index, status: status, data: data.baseAddress, length: data.count,
                                       reason: UnsafeRawBufferPointer(reason), retryAfterMilliseconds: milliseconds)
            }
        }
    }

    func batch(_ count: Int) -> Batch<JobBytes> {
        Batch(id: 1, key: "k", jobs: (0..<count).map { Job(id: "\($0)", key: "k", payload: []) }, reason: .size)
    }

    @Test func aReasonAndARetryAfterReachTheOutcome() {
        let collector = EmitCollector(count: 3)

        #expect(emit(collector, 0, BM_FAILED, "dup", reason: "constraint") == 0)
        #expect(emit(collector, 1, BM_RETRY, "locked", reason: "busy", after: 2000) == 0)
        #expect(emit(collector, 2, BM_RETRY, "later", reason: "", after: 7_200_000) == 0)

        let outcomes = collector.outcomes(for: batch(3), returned: 0, message: "")
        #expect(outcomes[0].failureReason == .named("constraint"))
        #expect(!outcomes[0].isRetryable)
        #expect(outcomes[1].failureReason == .named("busy"))
        #expect(outcomes[1].retryAfter == .seconds(2))
        #expect(outcomes[2].failureReason == nil)
        #expect(outcomes[2].retryAfter == .seconds(3600), "at most an hour is kept")
    }

    @Test(arguments: [
        (BM_FAILED, "two words", UInt64(0), "not a token"),
        (BM_FAILED, String(repeating: "a", count: 33), 0, "not a token"),
        (BM_OK, "ok", 0, "a reason names a failure"),
        (BM_FAILED, "", 100, "only BM_RETRY is retried"),
        (BM_OK, "", 100, "only BM_RETRY is retried"),
    ])
    func refusesWhatDoesNotBelong(status: Int32, reason: String, after: UInt64, why: String) {
        let collector = EmitCollector(count: 1)

        #expect(emit(collector, 0, status, "x", reason: reason, after: after) == -1)
        #expect(collector.refusals.first?.contains(why) == true, "\(collector.refusals)")
        #expect(collector.status(0) == nil, "a refused emit leaves the job to a later one")
        #expect(emit(collector, 0, BM_OK, "x", reason: "") == 0)
    }
}
