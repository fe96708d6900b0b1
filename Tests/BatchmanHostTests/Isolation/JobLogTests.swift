import Batchman
@testable import BatchmanHost
import CBatchmanPlugin
import Glibc
import Testing

/// A batch's jobs reach the worker through shared memory: written once by the host, laid out in
/// place as the plugin's `bm_job`s by the worker.
@Suite struct JobLogTests {
    struct Seen: Equatable {
        let id: String
        let payload: String
        let attempt: UInt32
        let flags: UInt32
    }

    /// A writer, and a reader on its own descriptor for the same memory (as the worker's is).
    static func pair() throws -> (JobLog.Writer, JobLog.Reader) {
        let writer = try #require(JobLog.Writer.make())
        let descriptor = dup(writer.fileDescriptor)
        try #require(descriptor >= 0)
        return (writer, JobLog.Reader(fileDescriptor: descriptor))
    }

    static func batch(_ payloads: [String], attempts: [Int]? = nil, redelivered: Set<Int> = []) -> Batch<JobBytes> {
        Batch(id: 1, key: "k", jobs: payloads.indices.map { index in
            Job(id: "job-\(index)", key: "k", payload: Array(payloads[index].utf8)[...], attempt: attempts?[index] ?? 1,
                tag: JobTag(redelivered: redelivered.contains(index)))
        }, reason: .size)
    }

    static func read(_ reader: JobLog.Reader, count: Int, length: Int) -> [Seen]? {
        reader.withJobs(count: count, length: length) { jobs in
            jobs.map { job in
                Seen(id: String(decoding: UnsafeRawBufferPointer(start: job.id.ptr, count: job.id.len), as: UTF8.self),
                     payload: String(decoding: UnsafeRawBufferPointer(start: job.payload.ptr, count: job.payload.len), as: UTF8.self),
                     attempt: job.attempt, flags: job.flags)
            }
        }
    }

    @Test func theWorkerSeesEachJobOfThePartInItsOrderWithItsAttemptAndFlags() throws {
        let (writer, reader) = try Self.pair()
        // A job on a later attempt is a redelivery too (Job.isRedelivery).
        let batch = Self.batch(["{\"a\":1}", "", "three", "four"], attempts: [1, 1, 1, 2], redelivered: [1])
        let length = try #require(writer.write([2, 1, 3], of: batch))
        #expect(length == 3 * JobLog.jobHeaderSize + "job-2three".utf8.count + "job-1".utf8.count + "job-3four".utf8.count)
        #expect(Self.read(reader, count: 3, length: length) == [
            Seen(id: "job-2", payload: "three", attempt: 1, flags: 0),
            Seen(id: "job-1", payload: "", attempt: 1, flags: BM_JOB_REDELIVERED),
            Seen(id: "job-3", payload: "four", attempt: 2, flags: BM_JOB_REDELIVERED),
        ])
    }

    @Test func aBatchLargerThanTheMappingGrowsItOnBothSides() throws {
        let (writer, reader) = try Self.pair()
        let small = Self.batch(["x"])
        let smallLength = try #require(writer.write([0], of: small))
        #expect(Self.read(reader, count: 1, length: smallLength)?.first?.payload == "x")
        // 3 MiB of payloads: past the first 1 MiB mapping of both.
        let big = Self.batch((0..<3).map { String(repeating: Character(UnicodeScalar(UInt8(97 + $0))), count: 1 << 20) })
        let bigLength = try #require(writer.write([0, 1, 2], of: big))
        let seen = try #require(Self.read(reader, count: 3, length: bigLength))
        #expect(seen.map(\.payload) == big.jobs.map { String(decoding: $0.payload, as: UTF8.self) })
    }

    @Test func jobsThatAreNotWhatTheFrameSaysAreRefused() throws {
        let (writer, reader) = try Self.pair()
        let length = try #require(writer.write([0, 1], of: Self.batch(["ab", "cd"])))
        #expect(Self.read(reader, count: 2, length: length - 1) == nil)
        #expect(Self.read(reader, count: 3, length: length) == nil)
        #expect(Self.read(reader, count: 1, length: length) == nil)
        #expect(Self.read(reader, count: 2, length: length) != nil)
    }
}
