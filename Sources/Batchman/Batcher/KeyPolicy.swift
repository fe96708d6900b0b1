/// What the batchers of one configuration share: their settings, where batch ids come from, and
/// how retry delays are drawn. One object for every key on the defaults, one per overridden key,
/// so that an idle key does not carry a copy of its settings.
@usableFromInline final class KeyPolicy: Sendable {
    @usableFromInline let config: BatcherConfig
    let batchIds: BatchIdGenerator
    let jitter: FlightEngine.Jitter

    @usableFromInline init(config: BatcherConfig, batchIds: BatchIdGenerator, jitter: @escaping FlightEngine.Jitter) {
        self.config = config
        self.batchIds = batchIds
        self.jitter = jitter
    }

    /// This policy with `config` instead: the same batch ids and jitter.
    @usableFromInline func with(_ config: BatcherConfig) -> KeyPolicy {
        config == self.config ? self : KeyPolicy(config: config, batchIds: batchIds, jitter: jitter)
    }
}
