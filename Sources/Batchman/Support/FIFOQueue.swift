/// A first-in first-out queue with amortised O(1) push and pop.
///
/// Two arrays: pushes go to `inbox`; pops come from `outbox`, refilled by reversing `inbox`
/// when it runs dry, so each element is moved once.
/// Shared with the host (its worker pool and plugin call queues), hence `package`.
@usableFromInline package struct FIFOQueue<Element> {
    @inlinable package init() {}

    @usableFromInline var inbox: [Element] = []
    @usableFromInline var outbox: [Element] = []

    @inlinable package var isEmpty: Bool { inbox.isEmpty && outbox.isEmpty }

    @inlinable package mutating func append(_ element: Element) {
        inbox.append(element)
    }

    /// Puts `element` before every other: the next ``popFirst()`` returns it.
    @inlinable package mutating func prepend(_ element: Element) {
        outbox.append(element)
    }

    /// The element ``popFirst()`` would return.
    @inlinable package var first: Element? { outbox.last ?? inbox.first }

    @inlinable package mutating func popFirst() -> Element? {
        if outbox.isEmpty {
            guard !inbox.isEmpty else { return nil }
            outbox = inbox.reversed()
            inbox.removeAll(keepingCapacity: true)
        }
        return outbox.popLast()
    }
}

extension FIFOQueue: Sendable where Element: Sendable {}
