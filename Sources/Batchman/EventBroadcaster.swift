import Synchronization

/// Fans events out to every subscribed `AsyncStream`; costs one atomic load when nobody listens.
@usableFromInline final class EventBroadcaster: Sendable {
    init() {}

    let subscribers = Mutex<[Int: AsyncStream<BatchmanEvent>.Continuation]>([:])
    let nextSubscriberId = Atomic<Int>(0)
    let subscriberCount = Atomic<Int>(0)

    /// Whether anyone listens; check it before building events on a hot path.
    @usableFromInline var isActive: Bool { subscriberCount.load(ordering: .relaxed) > 0 }

    @usableFromInline func subscribe(bufferingPolicy: AsyncStream<BatchmanEvent>.Continuation.BufferingPolicy) -> AsyncStream<BatchmanEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: BatchmanEvent.self, bufferingPolicy: bufferingPolicy)
        let id = nextSubscriberId.add(1, ordering: .relaxed).newValue
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        subscribers.withLock { $0[id] = continuation }
        subscriberCount.add(1, ordering: .relaxed)
        return stream
    }

    @usableFromInline func emit(_ event: BatchmanEvent) {
        guard isActive else { return }
        subscribers.withLock { subscribers in
            for continuation in subscribers.values { continuation.yield(event) }
        }
    }

    @usableFromInline func emit(_ events: [BatchmanEvent]) {
        guard isActive, !events.isEmpty else { return }
        subscribers.withLock { subscribers in
            for continuation in subscribers.values {
                for event in events { continuation.yield(event) }
            }
        }
    }

    /// Ends every stream; called once the instance has shut down.
    @usableFromInline func finish() {
        let continuations = subscribers.withLock { subscribers in
            defer { subscribers.removeAll() }
            return Array(subscribers.values)
        }
        for continuation in continuations { continuation.finish() }
    }

    func unsubscribe(_ id: Int) {
        let removed = subscribers.withLock { $0.removeValue(forKey: id) }
        if removed != nil { subscriberCount.subtract(1, ordering: .relaxed) }
    }
}
