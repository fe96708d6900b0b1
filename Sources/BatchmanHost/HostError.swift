/// A failure of `batchman`, with the exit status it maps to (sysexits.h).
public struct HostError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// Bad command line: exit 64 (EX_USAGE).
        case usage
        /// Bad manifest or plugin: exit 78 (EX_CONFIG).
        case configuration
        /// Something failed while running: exit 70 (EX_SOFTWARE).
        case runtime
        /// A server it needs cannot be reached (NATS): exit 69 (EX_UNAVAILABLE).
        case unavailable
        /// An input file is not what it should be: exit 65 (EX_DATAERR).
        case dataError
        /// An input file cannot be read: exit 66 (EX_NOINPUT).
        case noInput
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitCode: Int32 {
        switch kind {
        case .usage: 64
        case .configuration: 78
        case .runtime: 70
        case .unavailable: 69
        case .dataError: 65
        case .noInput: 66
        }
    }

    public var description: String { message }
}
