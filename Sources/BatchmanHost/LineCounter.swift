import Synchronization

/// Counts input lines that were not jobs, for the statistics line.
final class LineCounter: Sendable {
    private let value = Atomic<Int>(0)
    var count: Int { value.load(ordering: .relaxed) }
    func add() { value.add(1, ordering: .relaxed) }
}
