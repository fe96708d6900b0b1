import BatchmanNATS
import Testing

@testable import BatchmanHost

/// What a takeover does with the partition's old consumers, answered and missing.
@Suite struct ConsumerTakeoverTests {
    typealias Found = ConsumerTakeover.Found

    @Test func startsAfterTheLatestConsumersFloorAndDeletesEveryOldOne() throws {
        let answered = [Found(name: "jobs-p3-12", acknowledgedThrough: 900, delivered: 950),
                        Found(name: "jobs-p3-40", acknowledgedThrough: 1200, delivered: 1300),
                        Found(name: "jobs-p30-41", acknowledgedThrough: 5000, delivered: 5000)]
        let plan = try ConsumerTakeover.plan(prefix: "jobs-p3-", answered: answered, missing: [])
        #expect(plan == ConsumerTakeover(start: 1201, redeliveredThrough: 1300, deletions: ["jobs-p3-12", "jobs-p3-40"]))
    }

    @Test func startsAtTheBeginningWithoutAnOldConsumer() throws {
        let plan = try ConsumerTakeover.plan(prefix: "jobs-p3-", answered: [Found(name: "jobs-p4-9", acknowledgedThrough: 7, delivered: 7)], missing: ["jobs-p5-2"])
        #expect(plan == ConsumerTakeover(start: 1, redeliveredThrough: 0, deletions: []))
    }

    /// Left out of the list (its replicas had no leader) and never deleted, an old consumer
    /// lingered on the server for the rest of the 3-node test.
    @Test func deletesAnOlderConsumerThatDidNotAnswer() throws {
        let plan = try ConsumerTakeover.plan(prefix: "jobs-p5-", answered: [Found(name: "jobs-p5-83", acknowledgedThrough: 40_000, delivered: 40_100)],
                                             missing: ["jobs-p5-13", "jobs-p6-14"])
        #expect(plan == ConsumerTakeover(start: 40_001, redeliveredThrough: 40_100, deletions: ["jobs-p5-83", "jobs-p5-13"]))
    }

    /// The latest consumer's floor unknown, starting after an older one would run every job
    /// since again: the takeover waits for it to answer.
    @Test func waitsForTheLatestConsumerWhenItDidNotAnswer() {
        #expect(throws: NATSError.self) {
            try ConsumerTakeover.plan(prefix: "jobs-p5-", answered: [Found(name: "jobs-p5-13", acknowledgedThrough: 100, delivered: 120)], missing: ["jobs-p5-83"])
        }
        #expect(throws: NATSError.self) { try ConsumerTakeover.plan(prefix: "jobs-p5-", answered: [], missing: ["jobs-p5-83"]) }
    }

    /// A consumer that never answers again would leave its partition to nobody: after the wait,
    /// the takeover starts after the floor it knows and deletes the silent one.
    @Test func stopsWaitingAndStartsAfterTheFloorItKnows() throws {
        let plan = try ConsumerTakeover.plan(prefix: "jobs-p5-", answered: [Found(name: "jobs-p5-13", acknowledgedThrough: 100, delivered: 120)],
                                             missing: ["jobs-p5-83"], stopWaiting: true)
        #expect(plan == ConsumerTakeover(start: 101, redeliveredThrough: 120, latestUnknown: true, deletions: ["jobs-p5-13", "jobs-p5-83"]))
    }
}
