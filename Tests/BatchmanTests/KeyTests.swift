import Batchman
import BatchmanTesting
import Testing

@Suite struct KeyTests {
    /// A processor that answers each job with the name of the processor that handled it.
    static func named(_ name: String) -> TestProcessor<String, String> {
        TestProcessor { batch in batch.jobs.map { .completed($0, "\(name):\(batch.key)") } }
    }

    @Test func routesEachKeyToItsOwnProcessorAndUnknownKeysToDefault() async throws {
        let batchman = try TestBatchman(
            config: BatchmanConfig(maxBatchSize: 1),
            processors: ["default": { _ in Self.named("default") }, "logger": { _ in Self.named("logger") }],
            clock: ManualClock(), logger: .silent)

        async let logger = batchman.submit(id: "1", key: "logger", payload: "x")
        async let other = batchman.submit(id: "1", key: "analytics", payload: "x")

        #expect(await logger.result == "logger:logger")
        #expect(await other.result == "default:analytics")
    }

    @Test func givesEveryKeyItsOwnProcessorInstance() async throws {
        let madeFor = RecordLog<String>()
        let batchman = try TestBatchman(config: BatchmanConfig(maxBatchSize: 1), clock: ManualClock(), logger: .silent) { key in
            madeFor.append(key)
            return TestProcessor<String, String>.echo()
        }

        for (index, key) in ["a", "b", "a", "c", "b"].enumerated() { _ = await batchman.submit(id: "\(index)", key: key, payload: "p") }

        #expect(madeFor.elements == ["a", "b", "c"])
    }

    @Test func usesTheDefaultFactoryForAnOverriddenKeyWithoutOne() async throws {
        let config = BatchmanConfig(maxBatchSize: 10, keyConfigOverrides: [KeyConfigOverride(key: "fast", maxBatchSize: 1)])
        let batchman = try TestBatchman(config: config, processors: ["default": { _ in Self.named("default") }], clock: ManualClock(), logger: .silent)

        #expect(await batchman.submit(id: "1", key: "fast", payload: "x").result == "default:fast")
    }

    @Test func appliesEachKeysOverridesAndTheDefaultsToOtherKeys() async throws {
        let clock = ManualClock()
        let processor = TestProcessor<String, String>.echo()
        let config = BatchmanConfig(
            frequency: .seconds(5), maxBatchSize: 3,
            keyConfigOverrides: [
                KeyConfigOverride(key: "time-sensitive", frequency: .milliseconds(500), maxBatchSize: 2),
                KeyConfigOverride(key: "logger", frequency: .seconds(10)),
            ])
        let batchman = try makeBatchman(config, clock: clock, processor: processor)

        for id in 1...2 { batchman.submit(id: "\(id)", key: "time-sensitive", payload: "p") { _ in } }
        let sized = await processor.batches.wait(forCount: 1)[0]
        #expect(sized.key == "time-sensitive")
        #expect(sized.reason == .size)

        batchman.submit(id: "1", key: "logger", payload: "p") { _ in }
        batchman.submit(id: "1", key: "other", payload: "p") { _ in }
        await clock.waitForSleepers()
        clock.advance(by: .seconds(5))
        let byTime = await processor.batches.wait(forCount: 2)
        #expect(byTime[1].key == "other", "the default frequency applies to a key without overrides")
        #expect(batchman.getJob(key: "logger", id: "1")?.status == .submitted)

        clock.advance(by: .seconds(5))
        #expect(await processor.batches.wait(forCount: 3)[2].key == "logger")

        for id in 1...3 { batchman.submit(id: "s\(id)", key: "logger", payload: "p") { _ in } }
        let loggerBySize = await processor.batches.wait(forCount: 4)[3]
        #expect(loggerBySize.jobs.count == 3, "logger keeps the default maxBatchSize")
    }

    @Test func sharesOneBatcherAcrossKeysWhenInstancePerKeyIsFalse() async throws {
        let made = RecordLog<String>()
        let processor = TestProcessor<String, String>.echo()
        let batchman = try TestBatchman(config: BatchmanConfig(maxBatchSize: 3, useInstancePerKey: false), clock: ManualClock(), logger: .silent) { key in
            made.append(key)
            return processor
        }
        let collector = ResultCollector<String, String>()

        batchman.submit(id: "1", key: "a", payload: "a1", onResult: collector.callback)
        batchman.submit(id: "1", key: "b", payload: "b1", onResult: collector.callback)
        #expect(batchman.getJob(key: "b", id: "1")?.payload == "b1", "jobs are found by key and id in the shared batcher")
        #expect(batchman.getJob(key: "c", id: "1") == nil)
        batchman.submit(id: "2", key: "c", payload: "c2", onResult: collector.callback)

        let batch = await processor.batches.wait(forCount: 1)[0]
        #expect(batch.jobs.map(\.key) == ["a", "b", "c"])
        #expect(made.elements == ["default"])
        let results = await collector.wait(forCount: 3)
        #expect(Set(results.map { "\($0.key)/\($0.id)=\($0.result ?? "")" }) == ["a/1=a1", "b/1=b1", "c/2=c2"])
    }

    @Test func failsTheJobWhenItsKeysProcessorCannotBeMade() async throws {
        struct Refused: Error, CustomStringConvertible { var description: String { "no credentials" } }
        let batchman = try TestBatchman(clock: ManualClock(), logger: .silent) { key in
            if key == "broken" { throw Refused() }
            return TestProcessor<String, String>.echo()
        }

        let result = await batchman.submit(id: "1", key: "broken", payload: "x")

        #expect(result.status == .failed)
        #expect(result.errorReason == .error)
        #expect(result.errorMessage == "could not create the processor for key \"broken\": no credentials")
    }
}
