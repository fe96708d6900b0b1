import Synchronization

/// Fans events out to every subscribed `AsyncStream`; costs one atomic load when nobody listens.
@usableFromInline final class EventBroadcaster: Sendable {
    @inlinable init() {}

    @usableFromInline let subscribers = Mutex<[Int: AsyncStream<BatchmanEvent>.Continuation]>([:])
    @usableFromInline let nextSubscriberId = Atomic<Int>(0)
    @usableFromInline let subscriberCount = Atomic<Int>(0)

    /// Whether anyone listens; check it before building events on a hot path.
    @inlinable var isActive: Bool { subscriberCount.load(ordering: .relaxed) > 0 }

    @inlinable func subscribe(bufferingPolicy: AsyncStream<BatchmanEvent>.Continuation.BufferingPolicy) -> AsyncStream<BatchmanEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: BatchmanEvent.self, bufferingPolicy: bufferingPolicy)
        let id = nextSubscriberId.add(1, ordering: .relaxed).newValue
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id) }
        subscribers.withLock { $0[id] = continuation }
        subscriberCount.add(1, ordering: .relaxed)
        return stream
    }

    @inlinable func emit(_ event: BatchmanEvent) {
        guard isActive else { return }
        subscribers.withLock { subscribers in
            for continuation in subscribers.values { continuation.yield(event) }
        }
    }

    @inlinable func emit(_ events: [BatchmanEvent]) {
        guard isActive, !events.isEmpty else { return }
        subscribers.withLock { subscribers in
            for continuation in subscribers.values {
                for event in events { continuation.yield(event) }
            }
        }
    }

    /// Ends every stream; called once the instance has shut down.
    @inlinable func finish() {
        let continuations = subscribers.withLock { subscribers in
            defer { subscribers.removeAll() }
            return Array(subscribers.values)
        }
        for continuation in continuations { continuation.finish() }
    }

    @inlinable func unsubscribe(_ id: Int) {
        let removed = subscribers.withLock { $0.removeValue(forKey: id) }
        if removed != nil { subscriberCount.subtract(1, ordering: .relaxed) }
    }
}
