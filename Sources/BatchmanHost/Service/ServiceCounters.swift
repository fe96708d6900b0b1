import Synchronization

/// What the statistics line says of clients: connections open now, and results dropped because
/// their client was gone.
final class ServiceCounters: Sendable {
    private let open = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)

    var connections: Int { open.load(ordering: .relaxed) }
    var orphans: Int { dropped.load(ordering: .relaxed) }

    func connected() { open.add(1, ordering: .relaxed) }
    func disconnected() { open.subtract(1, ordering: .relaxed) }
    func orphaned(_ count: Int) { dropped.add(count, ordering: .relaxed) }
}
