#if canImport(Glibc)
import Glibc
#endif

/// Where Batchman's diagnostics go: processor misbehaviour, failing callbacks, debug traces.
public struct BatchmanLogger: Sendable {
    public enum Level: Int, Sendable, Hashable, Comparable, CustomStringConvertible {
        case debug, info, warning, error

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
        public var description: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            }
        }
    }

    /// What a message is about, for a logger that writes fields (JSON lines): each nil where it
    /// does not apply.
    public struct Context: Sendable, Hashable {
        public var key: String?
        public var plugin: String?
        /// The number of the reload the message is about.
        public var reload: Int?

        public init(key: String? = nil, plugin: String? = nil, reload: Int? = nil) {
            self.key = key
            self.plugin = plugin
            self.reload = reload
        }
    }

    let handler: @Sendable (Level, String, Context) -> Void

    /// A logger that hands every message to `handler`.
    public init(_ handler: @escaping @Sendable (Level, String) -> Void) {
        self.handler = { level, message, _ in handler(level, message) }
    }

    /// A logger that hands every message to `handler` with what it is about.
    public init(withContext handler: @escaping @Sendable (Level, String, Context) -> Void) {
        self.handler = handler
    }

    public func log(_ level: Level, _ message: @autoclosure () -> String) {
        handler(level, message(), Context())
    }

    public func log(_ level: Level, _ message: @autoclosure () -> String, context: Context) {
        handler(level, message(), context)
    }

    /// Writes `batchman: <level>: <message>` lines to standard error (the default).
    public static let standardError = BatchmanLogger { level, message in
        // One write(2) per line keeps lines from concurrent threads whole.
        var line = "batchman: \(level): \(message)\n"
        line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }

    /// Drops every message.
    public static let silent = BatchmanLogger { _, _ in }
}
