/// A first-in first-out queue with amortised O(1) push and pop.
///
/// Two arrays: pushes go to `inbox`; pops come from `outbox`, refilled by reversing `inbox`
/// when it runs dry, so each element is moved once.
struct FIFOQueue<Element> {
    private var inbox: [Element] = []
    private var outbox: [Element] = []

    var isEmpty: Bool { inbox.isEmpty && outbox.isEmpty }

    mutating func append(_ element: Element) {
        inbox.append(element)
    }

    /// The element ``popFirst()`` would return.
    var first: Element? { outbox.last ?? inbox.first }

    mutating func popFirst() -> Element? {
        if outbox.isEmpty {
            guard !inbox.isEmpty else { return nil }
            outbox = inbox.reversed()
            inbox.removeAll(keepingCapacity: true)
        }
        return outbox.popLast()
    }
}
