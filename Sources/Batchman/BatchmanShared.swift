import Dispatch
import FoundationEssentials
import Synchronization

/// What every batcher of one ``Batchman`` shares: batch ids, events, the logger, and the
/// instance-wide pending count with the gate that blocked producers wait at.
@usableFromInline final class BatchmanShared: Sendable {
    @usableFromInline let batchIds = BatchIdGenerator()
    @usableFromInline let events = EventBroadcaster()
    @usableFromInline let logger: BatchmanLogger
    @usableFromInline let capacity = CapacityGate()
    /// Jobs held by every batcher together, for `maxPendingTotal`.
    @usableFromInline let pendingTotal = Atomic<Int>(0)
    @usableFromInline let maxPendingTotal: Int?
    /// Jobs refused at submission, by reason.
    @usableFromInline let refusals = Mutex<[FailureReason: Int]>([:])

    @inlinable init(logger: BatchmanLogger, maxPendingTotal: Int?) {
        self.logger = logger
        self.maxPendingTotal = maxPendingTotal
    }

    /// Takes room for one job in the instance; false when `maxPendingTotal` is reached.
    @inlinable func reserve() -> Bool {
        let total = pendingTotal.add(1, ordering: .relaxed).newValue
        guard let maxPendingTotal, total > maxPendingTotal else { return true }
        pendingTotal.subtract(1, ordering: .relaxed)
        return false
    }

    /// Gives back room taken by ``reserve()`` for a job that was not accepted after all. It
    /// does not open the gate: the room existed before, and opening it here would wake the
    /// caller itself into a busy loop.
    @inlinable func unreserve() {
        pendingTotal.subtract(1, ordering: .relaxed)
    }

    /// `count` jobs are no longer held: wake producers waiting for room.
    @inlinable func released(_ count: Int) {
        pendingTotal.subtract(count, ordering: .relaxed)
        capacity.open()
    }

    /// Answers a refused job's handler at once; returns the job marked failed.
    @inlinable func refuse<Payload: Sendable, Output: Sendable>(
        _ job: Job<Payload>, reason: FailureReason, message: String, handler: ResultHandler<Payload, Output>, debug: Bool
    ) -> Job<Payload> {
        if debug { logger.log(.debug, "key \"\(job.key)\": refused job \"\(job.id)\": \(message)") }
        refusals.withLock { $0[reason, default: 0] += 1 }
        events.emit(.jobRejected(key: job.key, id: job.id, reason: reason))
        handler.deliverNow(.failure(job, reason: reason, message: message, at: Date()), logger: logger)
        var refused = job
        refused.status = .failed
        return refused
    }
}

/// Where producers wait for room under the `block` overflow policy.
///
/// A producer reads the ``generation``, tries to submit, and if the key was full waits until
/// the generation moves on: room freed between its try and its wait is never missed.
@usableFromInline final class CapacityGate: Sendable {
    @inlinable init() {}

    @usableFromInline enum Waiter {
        case thread(DispatchSemaphore)
        case task(CheckedContinuation<Void, Never>)
    }

    @usableFromInline struct State {
        @inlinable init() {}

        @usableFromInline var waiters: [Waiter] = []
    }

    @usableFromInline let state = Mutex(State())
    /// Read on every submission, so an atomic rather than the lock; it only moves under the lock.
    @usableFromInline let currentGeneration = Atomic<UInt64>(0)

    @inlinable var generation: UInt64 { currentGeneration.load(ordering: .acquiring) }

    /// Room was freed: every waiter tries again.
    @inlinable func open() {
        let waiters = state.withLock { state -> [Waiter] in
            currentGeneration.add(1, ordering: .releasing)
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters {
            switch waiter {
            case .thread(let semaphore): semaphore.signal()
            case .task(let continuation): continuation.resume()
            }
        }
    }

    /// Blocks the calling thread until the generation is past `seen`.
    @inlinable func waitBlocking(after seen: UInt64) {
        let semaphore = DispatchSemaphore(value: 0)
        let mustWait = state.withLock { state -> Bool in
            guard currentGeneration.load(ordering: .acquiring) == seen else { return false }
            state.waiters.append(.thread(semaphore))
            return true
        }
        if mustWait { semaphore.wait() }
    }

    /// Suspends until the generation is past `seen`.
    @inlinable func wait(after seen: UInt64) async {
        await withCheckedContinuation { continuation in
            let mustWait = state.withLock { state -> Bool in
                guard currentGeneration.load(ordering: .acquiring) == seen else { return false }
                state.waiters.append(.task(continuation))
                return true
            }
            if !mustWait { continuation.resume() }
        }
    }
}

