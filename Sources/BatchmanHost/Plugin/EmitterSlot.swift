import CBatchmanPlugin
import Glibc
import Synchronization

/// The `bm_emitter` handed to one plugin call, in memory that is never freed.
///
/// A plugin that keeps the emitter and calls it after `process_batch` returned, or from another
/// thread, must get -1, not a crash or another batch's results. So the emitter and its context
/// live for the whole process (slots are reused, one per call running at a time), and `emit`
/// accepts a call only from the thread that is inside the call right now.
final class EmitterSlot: @unchecked Sendable {
    // @unchecked: `collector` and `instance` are written by the owning thread before the call
    // and read only by that thread (the `owner` check), or read under `lastInstance`'s lock.
    let emitter: UnsafeMutablePointer<bm_emitter>
    /// `pthread_self()` of the thread inside the call; 0 between calls.
    private let owner = Atomic<UInt>(0)
    private var collector: EmitCollector?
    /// The instance of the latest call, to report a stray `emit` against.
    private let lastInstance = Mutex<PluginInstance?>(nil)

    private static let free = Mutex<[EmitterSlot]>([])

    private init() {
        emitter = .allocate(capacity: 1)
        emitter.initialize(to: bm_emitter(ctx: nil, emit: emitCallback))
        // Retained for ever: the plugin may hold this pointer as long as it likes.
        emitter.pointee.ctx = Unmanaged.passRetained(self).toOpaque()
    }

    /// A slot for a call of `instance` on the current thread.
    static func take(for instance: PluginInstance, collector: EmitCollector) -> EmitterSlot {
        let slot = free.withLock { $0.popLast() } ?? EmitterSlot()
        slot.collector = collector
        slot.lastInstance.withLock { $0 = instance }
        slot.owner.store(UInt(pthread_self()), ordering: .releasing)
        return slot
    }

    /// Ends the call: from now on `emit` through this slot is refused.
    func giveBack() {
        owner.store(0, ordering: .releasing)
        collector = nil
        Self.free.withLock { $0.append(self) }
    }

    fileprivate func emit(index: Int, status: Int32, data: UnsafeRawPointer?, length: Int) -> Int32 {
        guard owner.load(ordering: .acquiring) == UInt(pthread_self()), let collector else {
            lastInstance.withLock { $0 }?.reportStrayEmit()
            return -1
        }
        return collector.emit(index: index, status: status, data: data, length: length)
    }
}

/// The C function behind every `bm_emitter`: forwards to the slot in `ctx`.
private let emitCallback: @convention(c) (UnsafeMutableRawPointer?, Int, Int32, UnsafePointer<CChar>?, Int) -> Int32 = {
    context, index, status, data, length in
    guard let context else { return -1 }
    return Unmanaged<EmitterSlot>.fromOpaque(context).takeUnretainedValue()
        .emit(index: index, status: status, data: UnsafeRawPointer(data), length: length)
}
