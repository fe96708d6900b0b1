/// One thing the input loop polls: standard input or a file (``StreamSource``), a `--listen`
/// socket (``ListenerSource``), a client's connection (``ClientSource``). Adding an input is one
/// more of these; the loop knows none of them by name but the stream, whose end it reports.
///
/// Every method runs on the loop's thread.
protocol InputSource: AnyObject {
    var descriptor: Int32 { get }
    /// The poll events to wait for now (0: none); `reading` is false at the memory bound, when
    /// no source may read lines (writing goes on).
    func events(reading: Bool, loop: InputLoop) -> Int16
    /// When the loop must look at this source again even if nothing happens (monotonic
    /// nanoseconds), or nil.
    var deadline: UInt64? { get }
    /// Called on every turn before the poll (a source fed by another thread takes what it was
    /// handed here).
    func prepare(reading: Bool, loop: InputLoop)
    /// `revents` came for the descriptor: read lines and hand them to `loop`, accept, or write.
    func ready(_ revents: Int16, reading: Bool, loop: InputLoop)
    /// Reading has ended (a stop signal, or the end of input): take no more lines.
    func stopReading(loop: InputLoop)
    /// Done with: the loop calls ``close(loop:)`` and drops it.
    var isFinished: Bool { get }
    func close(loop: InputLoop)
    /// The grace after the drain is over: whatever is not answered is dropped.
    func abandon()
}

extension InputSource {
    var deadline: UInt64? { nil }
    func prepare(reading: Bool, loop: InputLoop) {}
    func abandon() {}
}
