/// A binary min-heap of deadlines (durations since a clock's origin); equal deadlines pop in the
/// order they were pushed.
struct DeadlineHeap<Value> {
    struct Entry {
        let deadline: Duration
        /// Breaks ties between equal deadlines: first scheduled, first fired.
        let sequence: UInt64
        let value: Value

        func precedes(_ other: Entry) -> Bool {
            deadline < other.deadline || (deadline == other.deadline && sequence < other.sequence)
        }
    }

    private(set) var entries: [Entry] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var earliest: Duration? { entries.first?.deadline }

    mutating func push(_ value: Value, at deadline: Duration) {
        entries.append(Entry(deadline: deadline, sequence: nextSequence, value: value))
        nextSequence &+= 1
        siftUp(from: entries.count - 1)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popDue(at now: Duration) -> Value? {
        guard let first = entries.first, first.deadline <= now else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(from: 0)
        }
        return first.value
    }

    mutating func removeAll() {
        entries.removeAll()
    }

    private mutating func siftUp(from index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { return }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(from index: Int) {
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
