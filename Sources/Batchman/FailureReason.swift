/// Why a job failed. The raw values are the wire names used in results and events.
///
/// A struct rather than an enum: besides Batchman's own reasons (``builtIn``), a processor may
/// name its own with ``named(_:)`` (the host's plugins do, with `emit_detailed`), and those
/// travel to results and events the same way. Compare with `==`; a `switch` needs a `default`.
public struct FailureReason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    @inlinable public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// The processor threw, returned a failure, or returned no result for the job.
    public static let error = FailureReason(rawValue: "error")
    /// The job's batch overran its timeout.
    public static let timeout = FailureReason(rawValue: "timeout")
    /// Every allowed attempt failed; the message is the last attempt's.
    public static let maxRetry = FailureReason(rawValue: "max_retry")
    /// A job with the same key and id was still pending or processing.
    public static let duplicate = FailureReason(rawValue: "duplicate")
    /// The job was submitted after shutdown began, or the drain ran out of time.
    public static let shutdownBatch = FailureReason(rawValue: "shutdown_batch")
    /// Backpressure rejected the job: its key or the whole instance was full.
    public static let overloaded = FailureReason(rawValue: "overloaded")
    /// The host could not read the job (bad JSON, missing field, line too long).
    public static let invalidInput = FailureReason(rawValue: "invalid_input")
    /// The job crashed its isolated plugin's worker process when it was processed alone (host
    /// only, `"isolation": "process"`).
    public static let crashed = FailureReason(rawValue: "crashed")

    /// Batchman's own reasons.
    public static let builtIn: [FailureReason] = [.error, .timeout, .maxRetry, .duplicate, .shutdownBatch, .overloaded, .invalidInput, .crashed]

    /// Where counters put the named reasons of a key past the first ``namedReasonsCounted``:
    /// names come from processors, and a counter per name must not grow without bound.
    public static let otherNamed = FailureReason(rawValue: "plugin:other")
    /// How many distinct named reasons a key's statistics count one by one.
    public static let namedReasonsCounted = 16

    /// A reason the processor names: `plugin:<token>` on the wire. `token` is what
    /// ``isValidToken(_:)`` accepts (the host checks; a Swift processor is trusted).
    @inlinable public static func named(_ token: String) -> FailureReason {
        FailureReason(rawValue: "plugin:" + token)
    }

    /// Whether the processor named it (``named(_:)``), rather than Batchman.
    @inlinable public var isNamed: Bool { rawValue.hasPrefix("plugin:") }

    /// A token a processor may name a reason with: 1 to 32 bytes of `a-z`, `A-Z`, `0-9`, `_`,
    /// `-` and `.`; short, so it is a label to count by, not a message.
    public static func isValidToken(_ token: some Collection<UInt8>) -> Bool {
        (1...32).contains(token.count) && token.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."): true
            default: false
            }
        }
    }

    public var description: String { rawValue }
}
