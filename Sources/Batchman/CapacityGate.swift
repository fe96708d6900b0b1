import Dispatch
import Synchronization

/// Where producers wait for room under the `block` overflow policy.
///
/// A producer reads the ``generation``, tries to submit, and if the key was full waits until
/// the generation moves on: room freed between its try and its wait is never missed.
@usableFromInline final class CapacityGate: Sendable {
    init() {}

    enum Waiter {
        case thread(DispatchSemaphore)
        case task(CheckedContinuation<Void, Never>)
    }

    struct State {
        init() {}

        var waiters: [Waiter] = []
    }

    let state = Mutex(State())
    /// Read on every submission, so an atomic rather than the lock; it only moves under the lock.
    let currentGeneration = Atomic<UInt64>(0)

    @usableFromInline var generation: UInt64 { currentGeneration.load(ordering: .acquiring) }

    /// Room was freed: every waiter tries again.
    @usableFromInline func open() {
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
    @usableFromInline func waitBlocking(after seen: UInt64) {
        let semaphore = DispatchSemaphore(value: 0)
        let mustWait = state.withLock { state -> Bool in
            guard currentGeneration.load(ordering: .acquiring) == seen else { return false }
            state.waiters.append(.thread(semaphore))
            return true
        }
        if mustWait { semaphore.wait() }
    }

    /// Suspends until the generation is past `seen`.
    @usableFromInline func wait(after seen: UInt64) async {
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

