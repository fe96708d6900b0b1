import Batchman
import CBatchmanPlugin

/// Writes a plugin's log lines, tagged with the key and plugin they came from.
public typealias PluginLogger = BatchmanLogger

/// The `bm_host` handed to one instance's `create`, with the context its `log` needs. It must
/// outlive the instance, so it is allocated by hand and released after `destroy`.
final class PluginHostServices: @unchecked Sendable {
    // @unchecked: `pointer` is written once here and only read by C afterwards.
    let pointer: UnsafeMutablePointer<bm_host>
    private let context: Unmanaged<LogContext>

    final class LogContext {
        let prefix: String
        let logger: PluginLogger
        /// Debug lines are shown only for keys configured with `debug: true`.
        let showsDebug: Bool
        init(prefix: String, logger: PluginLogger, showsDebug: Bool) {
            self.prefix = prefix
            self.logger = logger
            self.showsDebug = showsDebug
        }
    }

    init(key: String, pluginName: String, logger: PluginLogger, showsDebug: Bool) {
        context = Unmanaged.passRetained(LogContext(prefix: "plugin \(pluginName) (key \"\(key)\")", logger: logger, showsDebug: showsDebug))
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: bm_host(
            struct_size: UInt32(MemoryLayout<bm_host>.size),
            abi_major: UInt16(BM_ABI_MAJOR),
            abi_minor: UInt16(BM_ABI_MINOR),
            ctx: context.toOpaque(),
            log: { context, level, message, length in
                guard let context else { return }
                let log = Unmanaged<LogContext>.fromOpaque(context).takeUnretainedValue()
                guard level != BM_LOG_DEBUG || log.showsDebug else { return }
                let text = message.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) } ?? ""
                let mapped: BatchmanLogger.Level = switch level {
                case BM_LOG_DEBUG: .debug
                case BM_LOG_WARNING: .warning
                case BM_LOG_ERROR: .error
                default: .info
                }
                log.logger.log(mapped, "\(log.prefix): \(text)")
            }))
    }

    func release() {
        pointer.deinitialize(count: 1)
        pointer.deallocate()
        context.release()
    }
}
