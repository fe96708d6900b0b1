// LogPlugin: the seed's log processor as a Swift plugin. Each payload is a log entry
// {"timestamp": ..., "message": "...", "type": "info" | "warning" | "error"}; it is written to the
// host's log (standard error) at the entry's level, and the job's result is `true`.

import CBatchmanPlugin
import Glibc
import FoundationEssentials

private struct LogEntry: Decodable {
    var timestamp: String?
    var message: String
    var type: String?
}

/// One per key: the host services to log through.
private final class LogInstance {
    let host: UnsafePointer<bm_host>
    let decoder = JSONDecoder()

    init(host: UnsafePointer<bm_host>) {
        self.host = host
    }

    func log(_ level: Int32, _ line: String) {
        var line = line
        line.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { host.pointee.log(host.pointee.ctx, level, $0.baseAddress, $0.count) }
        }
    }
}

private func level(of type: String?) -> Int32 {
    switch type {
    case "error": BM_LOG_ERROR
    case "warning": BM_LOG_WARNING
    default: BM_LOG_INFO
    }
}

private let resultTrue: StaticString = "true"
private let badPayload: StaticString = "payload must be a JSON object {\"timestamp\", \"message\": string, \"type\": \"info\" | \"warning\" | \"error\"}"

private func emit(_ out: UnsafePointer<bm_emitter>, _ index: Int, _ status: Int32, _ text: StaticString) {
    text.withUTF8Buffer { bytes in
        bytes.withMemoryRebound(to: CChar.self) { _ = out.pointee.emit(out.pointee.ctx, index, status, $0.baseAddress, $0.count) }
    }
}

// The descriptor lives for the life of the process; nothing mutates it after it is made.
nonisolated(unsafe) private let descriptor: UnsafeMutablePointer<bm_plugin> = {
    let descriptor = UnsafeMutablePointer<bm_plugin>.allocate(capacity: 1)
    descriptor.initialize(to: bm_plugin(
        magic: BM_PLUGIN_MAGIC,
        struct_size: UInt32(MemoryLayout<bm_plugin>.size),
        abi_major: UInt16(BM_ABI_MAJOR),
        abi_minor: UInt16(BM_ABI_MINOR),
        flags: 0,
        name: UnsafePointer(strdup("log")),
        version: UnsafePointer(strdup("1.0.0")),
        create: { host, _, _, _, _ in
            guard let host else { return nil }
            return Unmanaged.passRetained(LogInstance(host: host)).toOpaque()
        },
        process_batch: { opaque, batch, out, _, _ in
            guard let opaque, let batch, let out else { return BM_FAILED }
            let instance = Unmanaged<LogInstance>.fromOpaque(opaque).takeUnretainedValue()
            for index in 0..<batch.pointee.count {
                let payload = batch.pointee.jobs[index].payload
                let bytes = UnsafeRawBufferPointer(start: payload.ptr, count: payload.len)
                guard let entry = try? instance.decoder.decode(LogEntry.self, from: Data(bytes)) else {
                    emit(out, index, BM_FAILED, badPayload)
                    continue
                }
                instance.log(level(of: entry.type), "\(entry.timestamp ?? "-") - \(entry.message)")
                emit(out, index, BM_OK, resultTrue)
            }
            return 0
        },
        destroy: { opaque in
            guard let opaque else { return }
            Unmanaged<LogInstance>.fromOpaque(opaque).release()
        }))
    return descriptor
}()

@_cdecl("batchman_plugin_v1")
public func batchmanPluginV1() -> UnsafePointer<bm_plugin> {
    UnsafePointer(descriptor)
}
