/// The result sinks a batcher's jobs report to, each held strongly with the number of jobs that
/// refer to it: jobs refer to their sink without a reference count of their own (see
/// ``ResultHandler/sink(_:)``), and this count changes under the batcher's lock, not atomically.
@usableFromInline struct SinkHolds<Payload: Sendable, Output: Sendable>: Sendable {
    @usableFromInline var sinks: [any ResultSink<Payload, Output>] = []
    @usableFromInline var jobs: [Int] = []

    @inlinable init() {}

    /// One more job refers to `sink`.
    @inlinable mutating func hold(_ sink: any ResultSink<Payload, Output>) {
        // A batcher reports to one sink or a few: a scan beats hashing.
        if let index = sinks.lastIndex(where: { $0 === sink }) {
            jobs[index] += 1
        } else {
            sinks.append(sink)
            jobs.append(1)
        }
    }

    /// One job less refers to `sink`; returns a strong reference for its delivery.
    @inlinable mutating func release(_ sink: any ResultSink<Payload, Output>) -> any ResultSink<Payload, Output> {
        let index = sinks.lastIndex { $0 === sink }!
        let strong = sinks[index]
        jobs[index] -= 1
        if jobs[index] == 0 {
            sinks.remove(at: index)
            jobs.remove(at: index)
        }
        return strong
    }
}
