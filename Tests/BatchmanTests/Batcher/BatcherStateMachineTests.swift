@testable import Batchman
import BatchmanTesting
import FoundationEssentials
import Testing

@Suite struct BatcherStateMachineTests {
    typealias Machine = BatcherStateMachine<String, String, ManualClock.Instant>
    let now = ManualClock.Instant(offset: .zero)

    @Test func isIdleAgainOnceTheResultsOfAnAbandonedDrainAreHandedOver() async {
        var machine = Machine(key: "k", config: BatcherConfig(maxBatchSize: 1), batchIds: BatchIdGenerator(), jitter: { $0 })
        let job = Job(id: "stuck", key: "k", payload: "p")
        guard case .accepted(let accepted) = machine.submit(job, size: 1, handler: .sync { _ in }, now: now) else {
            Issue.record("not accepted")
            return
        }
        #expect(accepted.start.count == 1, "the job's batch is running")

        let abandoned = machine.abandon(reason: "shutdown timed out", now: now, wallTime: Date())
        #expect(abandoned.deliveries.map(\.result.errorReason) == [.shutdownBatch])
        _ = machine.deliveryFinished(now: now)

        // A second drain (a second shutdown) must finish at once. The waiter is resumed either
        // way, so a machine that never drains fails this test instead of hanging it.
        let actions = machine.drain({}, now: now)
        #expect(actions.drained.count == 1, "a second shutdown after a timed-out one must not wait forever")
    }
}
