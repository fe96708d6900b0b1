/// The kinds of deadline a batcher sets on the one flush scheduler.
@usableFromInline enum BatcherDeadline: Hashable, Sendable {
    /// `frequency` after the first job of this window arrived.
    case window(UInt64)
    /// A retried job's backoff, by retry token.
    case retry(UInt64)
    /// A running batch's `timeout`, by batch id.
    case timeout(UInt64)
    /// `minBatchInterval` after the last batch started.
    case pacing
    /// A pause its processor asked for ends (see ``FlightEngine/pause(until:now:)``).
    case pauseEnds
}
