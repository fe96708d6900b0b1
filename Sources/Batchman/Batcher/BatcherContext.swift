/// What every batcher of one ``Batchman`` shares: the clock and the origin time counts from,
/// the flush scheduler, the state shared across keys, and how a payload is measured. One object
/// per `Batchman`, so that each key holds one reference instead of a copy of each (48 bytes a
/// key with the real clock: an idle key's bytes are what W5 and W7 measure).
@usableFromInline final class BatcherContext<Payload: Sendable, C: Clock>: Sendable where C.Duration == Duration {
    @usableFromInline let clock: C
    /// Time in the engines and the scheduler counts from here.
    @usableFromInline let origin: C.Instant
    @usableFromInline let scheduler: FlushScheduler
    @usableFromInline let shared: BatchmanShared
    /// A payload's size in bytes, for `maxBatchBytes`; nil when no limit needs it.
    @usableFromInline let payloadSize: (@Sendable (Payload) -> Int)?

    @inlinable init(clock: C, origin: C.Instant, scheduler: FlushScheduler, shared: BatchmanShared, payloadSize: (@Sendable (Payload) -> Int)?) {
        self.clock = clock
        self.origin = origin
        self.scheduler = scheduler
        self.shared = shared
        self.payloadSize = payloadSize
    }
}
