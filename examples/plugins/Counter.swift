// Counter: answers each job with how many jobs its key has seen so far.
import CBatchmanPlugin

final class Counter {
    var seen = 0
}

func emit(_ out: UnsafePointer<bm_emitter>, _ index: Int, _ text: String) {
    var text = text
    text.withUTF8 { bytes in
        bytes.withMemoryRebound(to: CChar.self) {
            _ = out.pointee.emit(out.pointee.ctx, index, BM_OK, $0.baseAddress, $0.count)
        }
    }
}

/// A C string with static lifetime: a string literal's bytes are NUL-terminated and never move.
func cString(_ literal: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(literal.utf8Start).assumingMemoryBound(to: CChar.self)
}

// A static descriptor that lives as long as the process; C function pointers cannot capture.
nonisolated(unsafe) let descriptor: UnsafeMutablePointer<bm_plugin> = {
    let descriptor = UnsafeMutablePointer<bm_plugin>.allocate(capacity: 1)
    descriptor.initialize(to: bm_plugin(
        magic: BM_PLUGIN_MAGIC, struct_size: UInt32(MemoryLayout<bm_plugin>.size),
        abi_major: UInt16(BM_ABI_MAJOR), abi_minor: UInt16(BM_ABI_MINOR), flags: 0,
        name: cString("counter"), version: cString("1.0.0"),
        create: { _, _, _, _, _ in Unmanaged.passRetained(Counter()).toOpaque() },
        process_batch: { instance, batch, out, _, _ in
            let counter = Unmanaged<Counter>.fromOpaque(instance!).takeUnretainedValue()
            for index in 0..<batch!.pointee.count {
                counter.seen += 1
                emit(out!, index, "\(counter.seen)")
            }
            return 0
        },
        destroy: { instance in Unmanaged<Counter>.fromOpaque(instance!).release() }))
    return descriptor
}()

@_cdecl("batchman_plugin_v1")
public func batchmanPluginV1() -> UnsafePointer<bm_plugin> { UnsafePointer(descriptor) }
