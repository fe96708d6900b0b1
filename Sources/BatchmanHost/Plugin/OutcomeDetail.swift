import Batchman

/// What `emit_detailed` adds to a failure (ABI 1.1): the plugin's reason token and its
/// retry-after. Its own file: the worker's outcome log carries it too, and the fuzzer builds
/// that parser without the rest of the plugin layer.
struct OutcomeDetail: Equatable, Sendable {
    /// 1 to 32 bytes of `[A-Za-z0-9_.-]`, or empty.
    var reason: String
    var retryAfterMilliseconds: UInt64

    /// The longest retry-after kept: a plugin cannot park a job for days.
    static let maxRetryAfterMilliseconds: UInt64 = 3_600_000

    var failureReason: FailureReason? { reason.isEmpty ? nil : .named(reason) }
    var retryAfter: Duration? { retryAfterMilliseconds == 0 ? nil : .milliseconds(Int64(retryAfterMilliseconds)) }
}
