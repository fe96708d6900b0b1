/// Where results go a batch at a time, for a caller whose jobs all report to one place.
///
/// A callback (`onResult`) is called once per job. A sink is called once per batch, with every
/// result of that batch submitted to it, on the thread that settled the batch (for a
/// ``QueueingBatchProcessor``, the thread its completion runs on). A sink that writes results
/// out can encode them all without a lock and write them in one go; the host writes its output
/// this way.
///
/// ```swift
/// final class Printer: ResultSink {
///     func receive(_ results: [JobResult<String, String>]) {
///         print(results.map { "\($0.id): \($0.result ?? "-")" }.joined(separator: "\n"))
///     }
/// }
/// let printer = Printer()
/// batchman.submit(id: "1", key: "greetings", payload: "hello", to: printer)
/// ```
public protocol ResultSink<Payload, Output>: AnyObject, Sendable {
    associatedtype Payload: Sendable
    associatedtype Output: Sendable

    /// Receives results, each exactly once; a refused job's result arrives alone, before
    /// `submit` returns.
    func receive(_ results: [JobResult<Payload, Output>])
}
