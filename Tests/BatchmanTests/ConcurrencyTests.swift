import Batchman
import BatchmanTesting
import Synchronization
import Testing

@Suite struct ConcurrencyTests {
    @Test func givesEveryAcceptedJobExactlyOneResultUnderConcurrentProducers() async throws {
        let producers = 8, keys = 16, jobsPerProducer = 2_000
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(3600), maxBatchSize: 7), processor: processor)
        let answered = RecordLog<String>()

        await withTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    for index in 0..<jobsPerProducer {
                        let id = "\(producer)-\(index)"
                        batchman.submit(id: id, key: "key-\(index % keys)", payload: id) { result in
                            #expect(result.status == .completed)
                            #expect(result.result == result.id)
                            answered.append("\(result.key)/\(result.id)")
                        }
                    }
                }
            }
        }
        await batchman.shutdown()

        let counts = Dictionary(answered.elements.map { ($0, 1) }, uniquingKeysWith: +)
        #expect(counts.count == producers * jobsPerProducer, "no job lost")
        #expect(counts.values.allSatisfy { $0 == 1 }, "no job answered twice")
        #expect(processor.batches.elements.reduce(0) { $0 + $1.jobs.count } == producers * jobsPerProducer)
    }

    @Test func acceptsExactlyOneOfManyConcurrentDuplicates() async throws {
        let processor = TestProcessor<String, String>.echo(gated: true)
        let batchman = try makeBatchman(processor: processor)
        let outcomes = RecordLog<FailureReason?>()

        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    batchman.submit(id: "same", key: "k", payload: "p") { outcomes.append($0.errorReason) }
                }
            }
        }
        processor.release()
        await batchman.shutdown()

        let reasons = outcomes.elements
        #expect(reasons.count == 50)
        #expect(reasons.filter { $0 == nil }.count == 1)
        #expect(reasons.filter { $0 == .duplicate }.count == 49)
    }

    @Test func splitsSimultaneousSubmissionsIntoFullBatches() async throws {
        let processor = TestProcessor<String, String>.echo()
        let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(3600), maxBatchSize: 10), processor: processor)

        await withTaskGroup(of: Void.self) { group in
            for id in 0..<20 {
                group.addTask { batchman.submit(id: "\(id)", key: "k", payload: "p") { _ in } }
            }
        }
        let batches = await processor.batches.wait(forCount: 2)
        await batchman.shutdown()

        #expect(batches.map(\.jobs.count) == [10, 10])
        #expect(batches.allSatisfy { $0.reason == .size })
        #expect(Set(batches.flatMap { $0.jobs.map(\.id) }).count == 20)
    }

    @Test func flushesOneHundredThousandKeysWithOneJobEach() async throws {
        // Its 100,000 batches run on a thread of their own, not on the pool the other tests share.
        try await withTaskExecutorPreference(DedicatedThreadExecutor()) {
            let keys = 100_000
            let clock = ManualClock()
            let processor = TestProcessor<String, String>.echo()
            let batchman = try makeBatchman(BatchmanConfig(frequency: .seconds(60)), clock: clock, processor: processor)
            let completed = Atomic<Int>(0)

            for key in 0..<keys {
                batchman.submit(id: "1", key: "k\(key)", payload: "p") { result in
                    if result.status == .completed { completed.add(1, ordering: .relaxed) }
                }
            }
            #expect(await armedDeadline(clock) == ManualClock.Instant(offset: .seconds(60)))
            #expect(clock.sleeperDeadlines.count == 1, "one timer for all keys, not one per key")

            clock.advance(by: .seconds(60))
            let batches = await processor.batches.wait(forCount: keys)
            await batchman.shutdown()

            #expect(batches.allSatisfy { $0.reason == .time && $0.jobs.count == 1 })
            #expect(completed.load(ordering: .relaxed) == keys)
        }
    }
}
