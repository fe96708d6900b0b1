import Batchman
import CBatchmanPlugin
import Glibc

/// Writes a plugin's log lines, tagged with the key and plugin they came from.
public typealias PluginLogger = BatchmanLogger

/// The `bm_host` handed to one instance's `create`, with the context its `log` needs. It must
/// outlive the instance, so it is allocated by hand and released after `destroy`.
final class PluginHostServices: @unchecked Sendable {
    // @unchecked: `pointer` is written once here and only read by C afterwards.
    let pointer: UnsafeMutablePointer<bm_host>
    private let context: Unmanaged<LogContext>
    /// `manifest_dir`'s bytes, for the instance's life.
    private let manifestDirectory: UnsafeMutablePointer<CChar>

    final class LogContext: Sendable {
        let prefix: String
        let context: BatchmanLogger.Context
        let logger: PluginLogger
        /// Debug lines are shown only for keys configured with `debug: true`.
        let showsDebug: Bool
        /// Where `pause` goes; nil where no core batches for the instance (plugin-test).
        let pauser: KeyPauser?
        /// The manifest entry the instance serves: the keys it may pause.
        let entry: String?
        init(prefix: String, context: BatchmanLogger.Context, logger: PluginLogger, showsDebug: Bool, pauser: KeyPauser?, entry: String?) {
            self.entry = entry
            self.prefix = prefix
            self.context = context
            self.logger = logger
            self.showsDebug = showsDebug
            self.pauser = pauser
        }

        func log(_ level: BatchmanLogger.Level, _ message: String) {
            guard level != .debug || showsDebug else { return }
            logger.log(level, "\(prefix): \(message)", context: context)
        }
    }

    /// - Parameters:
    ///   - manifestDirectory: `manifest_dir`: the folder of the manifest that configured the key.
    ///   - pauser: where `pause` goes (nil: every pause finds no key).
    ///   - entry: the manifest entry the instance serves; it may pause only that entry's keys.
    init(
        key: String, pluginName: String, logger: PluginLogger, showsDebug: Bool, manifestDirectory: String = "/", pauser: KeyPauser? = nil,
        entry: String? = nil
    ) {
        context = Unmanaged.passRetained(LogContext(prefix: "plugin \(pluginName) (key \"\(key)\")", context: .init(key: key, plugin: pluginName),
                                                    logger: logger, showsDebug: showsDebug, pauser: pauser, entry: entry))
        let directory = manifestDirectory.count > 1 && manifestDirectory.hasSuffix("/") ? String(manifestDirectory.dropLast()) : manifestDirectory
        self.manifestDirectory = strdup(directory)
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: bm_host(
            struct_size: UInt32(MemoryLayout<bm_host>.size),
            abi_major: UInt16(BM_ABI_MAJOR),
            abi_minor: UInt16(BM_ABI_MINOR),
            ctx: context.toOpaque(),
            log: { context, level, message, length in
                guard let context else { return }
                let mapped: BatchmanLogger.Level = switch level {
                case BM_LOG_DEBUG: .debug
                case BM_LOG_WARNING: .warning
                case BM_LOG_ERROR: .error
                default: .info
                }
                let bytes = message.map { UnsafeRawBufferPointer(start: $0, count: length) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
                Unmanaged<LogContext>.fromOpaque(context).takeUnretainedValue().log(mapped, PluginHostServices.oneLine(bytes))
            },
            manifest_dir: bm_str(ptr: self.manifestDirectory, len: strlen(self.manifestDirectory)),
            flags: showsDebug ? BM_HOST_DEBUG : 0,
            pause: { context, key, milliseconds in
                guard let context, key.ptr != nil || key.len == 0 else { return -1 }
                let services = Unmanaged<LogContext>.fromOpaque(context).takeUnretainedValue()
                let name = String(decoding: UnsafeRawBufferPointer(start: key.ptr, count: key.len), as: UTF8.self)
                return services.pauser?.pause(key: name, milliseconds: milliseconds, from: services.entry) == true ? 0 : -1
            }))
    }

    /// Logs a line of the host's own about this instance, with the plugin's prefix.
    func log(_ level: BatchmanLogger.Level, _ message: String) {
        context.takeUnretainedValue().log(level, message)
    }

    /// `bytes` as one log line: newlines, NULs and other control characters escaped (`\n`,
    /// `\x00`), so one `log` call is one line whatever the plugin passed.
    static func oneLine(_ bytes: UnsafeRawBufferPointer) -> String {
        var escaped: [UInt8] = []
        escaped.reserveCapacity(bytes.count)
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\n"): escaped += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): escaped += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case UInt8(ascii: "\t"): escaped += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case UInt8(ascii: "\\"): escaped += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                escaped += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: escaped.append(byte)
            }
        }
        return String(decoding: escaped, as: UTF8.self)
    }

    func release() {
        pointer.deinitialize(count: 1)
        pointer.deallocate()
        free(manifestDirectory)
        context.release()
    }
}
