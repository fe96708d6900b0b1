import Batchman
import FoundationEssentials
import Glibc
import Synchronization

/// `--log-format text|json` and `--log-timestamps`: how the host writes its log on standard
/// error. The host's worker processes write in the same format (it is on their command line).
public enum LogFormat: String, Equatable, Sendable, CaseIterable {
    /// `batchman: info: message`, after an RFC 3339 time with `--log-timestamps`.
    case text
    /// One JSON object per line: `time`, `level`, `message`, and `key`, `plugin`, `reload`
    /// where they apply.
    case json

    /// The format of this run (set once by ``Host/run(_:logger:)``): its worker processes are
    /// told it.
    static var current: LogFormat { currentFormat.load(ordering: .relaxed) == 1 ? .json : .text }
    static func setCurrent(_ format: LogFormat) { currentFormat.store(format == .json ? 1 : 0, ordering: .relaxed) }

    /// The logger for this format, on standard error. `beforeEachLine` runs before each line is
    /// written (the progress line is cleared first).
    public func logger(timestamps: Bool = false, beforeEachLine: (@Sendable () -> String)? = nil) -> BatchmanLogger {
        BatchmanLogger(withContext: { level, message, context in
            var line = beforeEachLine?() ?? ""
            switch self {
            case .text:
                if timestamps { line += Self.timestamp(Date()) + " " }
                line += "batchman: \(level): \(message)\n"
            case .json:
                line += Self.jsonLine(level: level, message: message, context: context, at: Date())
            }
            // One write(2) per line keeps lines from concurrent threads whole.
            line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
        })
    }

    /// `{"time":"2026-12-01T16:50:00.123Z","level":"info","message":"...","key":"k"}` and a newline.
    static func jsonLine(level: BatchmanLogger.Level, message: String, context: BatchmanLogger.Context, at time: Date) -> String {
        var line = #"{"time":""# + timestamp(time) + #"","level":"\#(level)","message":"#
        JSONStringEscaper.append(message, to: &line)
        if let key = context.key {
            line += #","key":"#
            JSONStringEscaper.append(key, to: &line)
        }
        if let plugin = context.plugin {
            line += #","plugin":"#
            JSONStringEscaper.append(plugin, to: &line)
        }
        if let reload = context.reload { line += #","reload":\#(reload)"# }
        return line + "}\n"
    }

    /// RFC 3339 in UTC with milliseconds: `2026-12-01T16:50:00.123Z`.
    static func timestamp(_ time: Date) -> String {
        var bytes: [UInt8] = []
        ISO8601Timestamp.append(time, to: &bytes)  // a JSON string: quoted
        return String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self)
    }

}

private let currentFormat = Atomic<Int>(0)
