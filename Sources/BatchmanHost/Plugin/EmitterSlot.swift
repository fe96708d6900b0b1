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
    // Read on every emit. Unchecked exclusivity: only the call's own thread touches them (see
    // above), so the runtime's dynamic access tracking, a few dozen instructions a read, buys
    // nothing; unmanaged: the call holds its collector until `giveBack()`, so a reference count
    // changed per emit buys nothing either.
    @exclusivity(unchecked) private var current = 0
    @exclusivity(unchecked) private var collector: Unmanaged<EmitCollector>?
    /// The instance of the latest call, to report a stray `emit` against.
    private let lastInstance = Mutex<PluginInstance?>(nil)

    private static let free = Mutex<[EmitterSlot]>([])

    /// One emitter of the ring: which slot and which place in it. Retained for ever, since the
    /// plugin may keep the emitter as long as it likes.
    private final class Ticket {
        let slot: Unmanaged<EmitterSlot>
        let index: Int
        init(slot: EmitterSlot, index: Int) {
            self.slot = Unmanaged.passUnretained(slot)
            self.index = index
        }
    }

    private init() {
        ring = .allocate(capacity: Self.ringSize)
        _ = Unmanaged.passRetained(self)  // slots, like their emitters, live for ever
        for index in 0..<Self.ringSize {
            let ticket = Unmanaged.passRetained(Ticket(slot: self, index: index)).toOpaque()
            (ring + index).initialize(to: bm_emitter(ctx: ticket, emit: emitCallback, emit_detailed: emitDetailedCallback))
        }
    }

    /// A slot for a call of `instance` on the current thread, and the emitter for that call.
    static func take(for instance: PluginInstance, collector: EmitCollector) -> (EmitterSlot, UnsafePointer<bm_emitter>) {
        let slot = free.withLock { $0.popLast() } ?? EmitterSlot()
        slot.current = (slot.current + 1) % ringSize
        slot.collector = Unmanaged.passUnretained(collector)
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

    /// Why an `emit` outside its call was refused.
    enum Stray: Equatable, Sendable {
        /// Through the emitter of an earlier call (a plugin that kept `out`).
        case staleEmitter
        /// After `process_batch` returned, with no call running on this slot.
        case afterReturn
        /// From a thread other than the one inside the call.
        case otherThread

        var sentence: String {
            switch self {
            case .staleEmitter: "emit() through the emitter of an earlier call (a bm_emitter kept past its process_batch)"
            case .afterReturn: "emit() after process_batch() returned"
            case .otherThread: "emit() from a thread other than the one inside process_batch()"
            }
        }
    }

    /// Runs `body` with the collector of the call `context`'s emitter belongs to, if that call
    /// is running on this thread; -1 otherwise (the emit is refused).
    fileprivate static func withCollector(of context: UnsafeMutableRawPointer, _ body: (EmitCollector) -> Int32) -> Int32 {
        // The ticket and the slot live for ever, and the call holds its collector: no reference
        // count changes on the way (see `collector`).
        Unmanaged<Ticket>.fromOpaque(context)._withUnsafeGuaranteedRef { ticket in
            ticket.slot._withUnsafeGuaranteedRef { slot in
                let owner = slot.owner.load(ordering: .acquiring)
                guard owner == UInt(pthread_self()), slot.current == ticket.index, let collector = slot.collector else {
                    let stray: Stray = slot.current != ticket.index ? .staleEmitter : owner == 0 ? .afterReturn : .otherThread
                    slot.lastInstance.withLock { $0 }?.reportStrayEmit(stray)
                    return -1
                }
                return collector._withUnsafeGuaranteedRef(body)
            }
        }
    }
}

/// The C function behind every `bm_emitter`'s `emit`: forwards to the call of the ticket in `ctx`.
private let emitCallback: @convention(c) (UnsafeMutableRawPointer?, Int, Int32, UnsafePointer<CChar>?, Int) -> Int32 = {
    context, index, status, data, length in
    guard let context else { return -1 }
    return EmitterSlot.withCollector(of: context) { $0.emit(index: index, status: status, data: UnsafeRawPointer(data), length: length) }
}

/// The C function behind `emit_detailed` (ABI 1.1).
private let emitDetailedCallback: @convention(c) (UnsafeMutableRawPointer?, Int, Int32, UnsafePointer<CChar>?, Int, bm_str, UInt64) -> Int32 = {
    context, index, status, data, length, reason, retryAfter in
    guard let context else { return -1 }
    return EmitterSlot.withCollector(of: context) { collector in
        guard reason.ptr != nil || reason.len == 0 else { return -1 }
        let token = UnsafeRawBufferPointer(start: reason.ptr, count: reason.len)
        return collector.emitDetailed(index: index, status: status, data: UnsafeRawPointer(data), length: length, reason: token,
                                      retryAfterMilliseconds: retryAfter)
    }
}
