import Synchronization

/// An append-only log that a test can await until it holds enough entries: the way tests wait
/// for asynchronous work without sleeping.
public final class RecordLog<Element: Sendable>: Sendable {
    private struct Waiter {
        let id: Int
        let count: Int
        let continuation: CheckedContinuation<[Element], Never>
    }

    private struct State {
        var elements: [Element] = []
        var waiters: [Waiter] = []
        var nextWaiterId = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Every entry so far, in the order they were appended.
    public var elements: [Element] { state.withLock { $0.elements } }
    public var count: Int { state.withLock { $0.elements.count } }

    public func append(_ element: Element) {
        let (ready, elements) = state.withLock { state -> ([Waiter], [Element]) in
            state.elements.append(element)
            let count = state.elements.count
            guard state.waiters.contains(where: { $0.count <= count }) else { return ([], []) }
            let ready = state.waiters.filter { $0.count <= count }
            state.waiters.removeAll { $0.count <= count }
            // Copied only when a waiter needs it: sharing the array on every append would make
            // the next append copy it, O(n^2) over a long log.
            return (ready, state.elements)
        }
        for waiter in ready { waiter.continuation.resume(returning: elements) }
    }

    /// Returns the entries once there are at least `count` of them, or whatever there is if
    /// the waiting task is cancelled (a test past its time limit fails instead of hanging).
    @discardableResult
    public func wait(forCount count: Int) async -> [Element] {
        let id = state.withLock { state -> Int in
            state.nextWaiterId += 1
            return state.nextWaiterId
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let elements = state.withLock { state -> [Element]? in
                    if state.elements.count >= count || Task.isCancelled { return state.elements }
                    state.waiters.append(Waiter(id: id, count: count, continuation: continuation))
                    return nil
                }
                if let elements { continuation.resume(returning: elements) }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> (Waiter, [Element])? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return (state.waiters.remove(at: index), state.elements)
            }
            if let (waiter, elements) = cancelled { waiter.continuation.resume(returning: elements) }
        }
    }
}
