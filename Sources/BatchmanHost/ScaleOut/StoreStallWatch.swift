/// Says when results have stopped being stored, and when they are stored again.
///
/// The publisher retries a result until the stream stores it, and a stream that has lost its
/// quorum (its last follower stuck in catch-up, two of three nodes down) answers nothing: every
/// retry is a timeout, and without this the host would say nothing while its results pile up.
/// Pure: the coordinator feeds it the age of the oldest result not yet stored, each tick, and
/// logs what it returns.
struct StoreStallWatch: Equatable {
    enum Phase: Equatable {
        case storing
        /// Since `since`; last said so at `reportedAt` (monotonic nanoseconds).
        case stalled(since: UInt64, reportedAt: UInt64)
    }

    enum Action: Equatable {
        case none
        /// `count` results not stored, the oldest sent `seconds` ago.
        case stalled(count: Int, seconds: Int)
        /// Results are stored again, after `seconds` of none.
        case storing(afterSeconds: Int)
    }

    /// How old the oldest unstored result must be to count as a stall.
    static let threshold: UInt64 = 30_000_000_000
    /// How often a stall is said again while it lasts.
    static let repeatEvery: UInt64 = 60_000_000_000

    private(set) var phase = Phase.storing

    /// `oldest`: nanoseconds since the oldest result not yet stored was first sent, nil if none.
    mutating func observe(count: Int, oldest: UInt64?, now: UInt64) -> Action {
        let isStalled = (oldest ?? 0) >= Self.threshold
        switch (phase, isStalled) {
        case (.storing, false):
            return .none
        case (.storing, true):
            phase = .stalled(since: now - (oldest ?? 0), reportedAt: now)
            return .stalled(count: count, seconds: Int((oldest ?? 0) / 1_000_000_000))
        case (.stalled(let since, let reportedAt), true):
            guard now - reportedAt >= Self.repeatEvery else { return .none }
            phase = .stalled(since: since, reportedAt: now)
            return .stalled(count: count, seconds: Int((oldest ?? 0) / 1_000_000_000))
        case (.stalled(let since, _), false):
            phase = .storing
            return .storing(afterSeconds: Int((now - since) / 1_000_000_000))
        }
    }
}
