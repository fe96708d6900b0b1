import CBatchmanPlugin
import Glibc
import Synchronization

/// The `bm_emitter` handed to one plugin call, in memory that is never freed.
///
/// A plugin that keeps an emitter and calls it after `process_batch` returned, or from another
/// thread, must get -1, not a crash or another batch's results. So emitters and their contexts
/// live for the whole process. A slot serves one call at a time (slots are reused, one per call
/// running at once) and accepts `emit` only from the thread inside that call, through the
/// emitter of that call: each call gets the next of the slot's ring of emitters, so a copy of
/// an earlier call's emitter is refused even on the same thread.
final class EmitterSlot: @unchecked Sendable {
    // @unchecked: `collector` and `current` are written by the owning thread before the call
    // and read only by that thread (the `owner` check); `lastInstance` is behind its lock.
    private let ring: UnsafeMutablePointer<bm_emitter>
    private static let ringSize = 256
    /// `pthread_self()` of the thread inside the call; 0 between calls.
    private let owner = Atomic<UInt>(0)
    private var current = 0
    private var collector: EmitCollector?
    /// The instance of the latest call, to report a stray `emit` against.
    private let lastInstance = Mutex<PluginInstance?>(nil)

    private static let free = Mutex<[EmitterSlot]>([])

    /// One emitter of the ring: which slot and which place in it. Retained for ever, since the
    /// plugin may keep the emitter as long as it likes.
    private final class Ticket {
        unowned(unsafe) let slot: EmitterSlot
        let index: Int
        init(slot: EmitterSlot, index: Int) {
            self.slot = slot
            self.index = index
        }
    }

    private init() {
        ring = .allocate(capacity: Self.ringSize)
        _ = Unmanaged.passRetained(self)  // slots, like their emitters, live for ever
        for index in 0..<Self.ringSize {
            let ticket = Unmanaged.passRetained(Ticket(slot: self, index: index)).toOpaque()
            (ring + index).initialize(to: bm_emitter(ctx: ticket, emit: emitCallback))
        }
    }

    /// A slot for a call of `instance` on the current thread, and the emitter for that call.
    static func take(for instance: PluginInstance, collector: EmitCollector) -> (EmitterSlot, UnsafePointer<bm_emitter>) {
        let slot = free.withLock { $0.popLast() } ?? EmitterSlot()
        slot.current = (slot.current + 1) % ringSize
        slot.collector = collector
        slot.lastInstance.withLock { $0 = instance }
        slot.owner.store(UInt(pthread_self()), ordering: .releasing)
        return (slot, UnsafePointer(slot.ring + slot.current))
    }

    /// Ends the call: from now on `emit` through this call's emitter is refused.
    func giveBack() {
        owner.store(0, ordering: .releasing)
        collector = nil
        Self.free.withLock { $0.append(self) }
    }

    fileprivate static func emit(ticket context: UnsafeMutableRawPointer, index: Int, status: Int32, data: UnsafeRawPointer?, length: Int) -> Int32 {
        let ticket = Unmanaged<Ticket>.fromOpaque(context).takeUnretainedValue()
        let slot = ticket.slot
        guard slot.owner.load(ordering: .acquiring) == UInt(pthread_self()), slot.current == ticket.index, let collector = slot.collector else {
            slot.lastInstance.withLock { $0 }?.reportStrayEmit()
            return -1
        }
        return collector.emit(index: index, status: status, data: data, length: length)
    }
}

/// The C function behind every `bm_emitter`: forwards to the slot of the ticket in `ctx`.
private let emitCallback: @convention(c) (UnsafeMutableRawPointer?, Int, Int32, UnsafePointer<CChar>?, Int) -> Int32 = {
    context, index, status, data, length in
    guard let context else { return -1 }
    return EmitterSlot.emit(ticket: context, index: index, status: status, data: UnsafeRawPointer(data), length: length)
}
