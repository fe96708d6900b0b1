/// A binary min-heap of deadlines; equal deadlines pop in the order they were pushed.
@usableFromInline struct DeadlineHeap<Instant: InstantProtocol, Value> {
    @inlinable init() {}

    @usableFromInline struct Entry {
        @inlinable init(deadline: Instant, sequence: UInt64, value: Value) {
            self.deadline = deadline
            self.sequence = sequence
            self.value = value
        }

        @usableFromInline let deadline: Instant
        /// Breaks ties between equal deadlines: first scheduled, first fired.
        @usableFromInline let sequence: UInt64
        @usableFromInline let value: Value

        @inlinable func precedes(_ other: Entry) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && sequence < other.sequence)
        }
    }

    @usableFromInline var entries: [Entry] = []
    @usableFromInline var nextSequence: UInt64 = 0

    @inlinable var isEmpty: Bool { entries.isEmpty }
    @inlinable var count: Int { entries.count }
    @inlinable var earliest: Instant? { entries.first?.deadline }

    @inlinable mutating func push(_ value: Value, at deadline: Instant) {
        entries.append(Entry(deadline: deadline, sequence: nextSequence, value: value))
        nextSequence &+= 1
        siftUp(from: entries.count - 1)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    @inlinable mutating func popDue(at now: Instant) -> Value? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(from: 0)
        }
        return first.value
    }

    @inlinable mutating func removeAll() {
        entries.removeAll()
    }

    @inlinable mutating func siftUp(from index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { return }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    @inlinable mutating func siftDown(from index: Int) {
        var parent = index
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < entries.count, entries[left].precedes(entries[smallest]) { smallest = left }
            if right < entries.count, entries[right].precedes(entries[smallest]) { smallest = right }
            guard smallest != parent else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
