@testable import Batchman
import BatchmanTesting
import Dispatch
import Foundation
import Synchronization
import Testing

/// Defects found by trying to break Batchman, each with the behaviour that fixes it.
// The limit guards against a hang; under .ci/run the test pool shared with the heavy tests has
// stalled for 80 s (every library test waited, and those behind a one-minute limit failed).
@Suite(.timeLimit(.minutes(5)))
struct HardeningTests {
    /// A slow factory (a plugin's `create`) for a new key must not stall other keys' submits.
    @Test func makesAKeysProcessorOutsideTheLockSoOtherKeysGoOn() async throws {
        let inSlowFactory = RecordLog<Void>()
        let releaseSlowFactory = DispatchSemaphore(value: 0)
        let batchman = try TestBatchman(config: BatchmanConfig(maxBatchSize: 1), clock: ManualClock(), logger: .silent) { key in
            if key == "slow" {
                inSlowFactory.append(())
                releaseSlowFactory.wait()
            }
            return TestProcessor<String, String>.echo()
        }
        let slowResult = RecordLog<StringResult>()
        Thread.detachNewThread {
            batchman.submit(id: "1", key: "slow", payload: "s") { slowResult.append($0) }
        }
        await inSlowFactory.wait(forCount: 1)

        let fast = await batchman.submit(id: "1", key: "fast", payload: "f")
        #expect(fast.result == "f", "another key went on while the slow factory ran")

        releaseSlowFactory.signal()
        #expect(await slowResult.wait(forCount: 1)[0].result == "s")
        await batchman.shutdown()
    }

    @Test func remembersAFactoryFailureInsteadOfCallingItForEveryJob() async throws {
        let calls = Atomic<Int>(0)
        struct Refused: Error, CustomStringConvertible { var description: String { "backend refused the key" } }
        let batchman = try TestBatchman(config: BatchmanConfig(maxBatchSize: 1), clock: ManualClock(), logger: .silent) { _ in
            calls.add(1, ordering: .relaxed)
            throw Refused()
        }

        var results: [StringResult] = []
        for id in 1...3 { results.append(await batchman.submit(id: "\(id)", key: "bad", payload: "p")) }
        await batchman.shutdown()

        #expect(calls.load(ordering: .relaxed) == 1)
        #expect(results.allSatisfy { $0.errorReason == .error && $0.errorMessage == #"could not create the processor for key "bad": backend refused the key"# })
    }

    @Test func comparesIdsAndKeysByTheirBytesNotByCanonicalEquivalence() async throws {
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed, "Swift strings call them equal")
        let madeFor = RecordLog<String>()
        let batchman = try TestBatchman(config: BatchmanConfig(maxBatchSize: 2), clock: ManualClock(), logger: .silent) { key in
            madeFor.append(key)
            return TestProcessor<String, String>.echo()
        }

        async let first = batchman.submit(id: composed, key: "k", payload: "1")
        async let second = batchman.submit(id: decomposed, key: "k", payload: "2")
        let sameKey = await [first, second]
        async let third = batchman.submit(id: "1", key: composed, payload: "3")
        async let fourth = batchman.submit(id: "1", key: decomposed, payload: "4")
        _ = batchman.submit(id: "2", key: composed, payload: "5") { _ in }
        _ = batchman.submit(id: "2", key: decomposed, payload: "6") { _ in }
        let otherKeys = await [third, fourth]
        await batchman.shutdown()

        #expect(sameKey.map(\.status) == [.completed, .completed], "\(sameKey.map { $0.errorMessage ?? "" })")
        #expect(sameKey.map { Array($0.id.utf8) } == [Array(composed.utf8), Array(decomposed.utf8)])
        #expect(otherKeys.map(\.status) == [.completed, .completed])
        #expect(Set(otherKeys.compactMap(\.batchId)).count == 2, "one batch per key")
        #expect(madeFor.elements.count == 3, "a processor for k and for each spelling of café")
    }
}


/// The one test of its size, in a suite of its own so that its time limit fits it alone.
@Suite(.timeLimit(.minutes(4)))
struct ShutdownScaleTests {
    /// One task per key made shutdown quadratic (TaskGroup bookkeeping): 200,000 keys took
    /// minutes on an idle machine. It is linear now (about 20 s in a debug build, alone; up to
    /// twice that while the whole test run loads both cores); the suite's time limit is the check.
    ///
    /// Its processor answers on the calling thread: an async one would queue 200,000 tasks on
    /// the cooperative pool (two threads on two cores), and every other test in the process would
    /// wait behind them.
    @Test func shutsDownTwoHundredThousandKeysInLinearTime() async throws {
        // Its seconds of work run on a thread of their own, not on the pool the other tests share.
        try await withTaskExecutorPreference(DedicatedThreadExecutor()) {
            let keys = 200_000
            let batchman = try TestBatchman(config: BatchmanConfig(frequency: .seconds(60)), clock: ManualClock(), logger: .silent) { _ in InlineEcho() }
            let completed = Atomic<Int>(0)
            for key in 0..<keys {
                batchman.submit(id: "1", key: "k\(key)", payload: "p") { result in
                    if result.status == .completed { completed.add(1, ordering: .relaxed) }
                }
            }

            await batchman.shutdown()

            #expect(completed.load(ordering: .relaxed) == keys)
        }
    }
}

/// Completes every job with its payload on the thread that hands it the batch: no task.
struct InlineEcho: QueueingBatchProcessor {
    typealias Payload = String
    typealias Output = String

    func enqueue(_ batch: Batch<String>, completion: @escaping @Sendable (Result<[JobOutcome<String>], any Error>) -> Void) {
        completion(.success(batch.jobs.map { .completed($0, $0.payload) }))
    }
}
