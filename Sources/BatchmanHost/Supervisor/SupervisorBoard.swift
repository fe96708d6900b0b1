import CBatchmanSystem
import Glibc
import Synchronization

/// Memory the host shares with its supervising parent (``Supervisor``): what the parent needs
/// to report a host that ended without finishing its run. The host writes, with no lock and no
/// system call: how many jobs it accepted and answered, which plugin call each of its threads
/// is in, its spool, and, when it ends on purpose, that it did and with what status. The
/// parent reads it after the host has ended, however it ended: the memory is the parent's too.
///
/// Layout (native byte order; host and parent are the same executable): `UInt64` accepted,
/// `UInt64` answered, `UInt64` finished (0, or 1 + the exit status), `UInt64` length of the
/// spool's path and its bytes (to 1 KiB), then at 1072 the output's two counts, `UInt64` lines
/// begun and `UInt64` lines written, then one 256-byte slot per calling thread: `UInt64` length
/// of the call site it is in (0: none), then the call site's text.
///
/// The output's lines are counted twice, before the write and after it, each with one atomic
/// add: a host that ends between the two (its writer preempted as the write returns, while
/// another thread crashes) leaves lines that may or may not have reached the output, and the
/// report says so instead of calling them unanswered, or answered.
final class SupervisorBoard: @unchecked Sendable {
    // @unchecked: the memory is written with atomics (counters, lengths) or by its one thread
    // (a slot's text, before its length is published), and read by the parent once the host is gone.
    private let base: UnsafeMutableRawPointer

    static let slotBytes = 256
    static let slots = 1040  // --workers (1024 at most), the control thread, and some to spare
    static let slotsOffset = 2048
    static let size = slotsOffset + slots * slotBytes
    private static let spoolOffset = 32
    private static let spoolBytes = 1024
    private static let outputBegunOffset = 1072
    private static let outputWrittenOffset = 1080

    /// The board of this process, when a supervising parent started it; set once at start.
    nonisolated(unsafe) private(set) static var shared: SupervisorBoard?

    /// The slot of the calling thread, plus one (0: none yet), in a thread-specific value.
    private static let slotKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    private let nextSlot = Atomic<Int>(0)

    init(base: UnsafeMutableRawPointer) {
        self.base = base
    }

    /// Makes the board at `base` this process's own (the host, at start).
    static func attach(_ base: UnsafeMutableRawPointer) {
        _ = slotKey
        shared = SupervisorBoard(base: base)
    }

    private func counter(_ offset: Int) -> UnsafeMutablePointer<UInt64> {
        (base + offset).assumingMemoryBound(to: UInt64.self)
    }

    // MARK: - The host writes

    func accepted(_ count: Int) { _ = bm_atomic_add(counter(0), UInt64(count)) }
    func answered(_ count: Int) { _ = bm_atomic_add(counter(8), UInt64(count)) }

    /// The output writer is about to write `count` results' lines.
    func outputBegun(_ count: Int) { _ = bm_atomic_add(counter(Self.outputBegunOffset), UInt64(count)) }
    /// The write of the `count` lines last begun returned: they are answered.
    func outputWritten(_ count: Int) { _ = bm_atomic_add(counter(Self.outputWrittenOffset), UInt64(count)) }
    /// The write of the `count` lines last begun failed: they are not answered.
    func outputFailed(_ count: Int) { _ = bm_atomic_add(counter(Self.outputBegunOffset), UInt64(bitPattern: Int64(-count))) }

    /// The host ends on purpose, with `status`.
    func finish(status: Int32) { bm_atomic_store(counter(16), 1 + UInt64(UInt8(truncatingIfNeeded: status))) }

    /// The spool that holds the accepted jobs, for the report.
    func setSpool(_ path: String) {
        let bytes = Array(path.utf8.prefix(Self.spoolBytes))
        bytes.withUnsafeBytes { (base + Self.spoolOffset + 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        bm_atomic_store(counter(Self.spoolOffset), UInt64(bytes.count))
    }

    /// The calling thread calls into a plugin at `site` (a C string) until ``endCall()``.
    func beginCall(_ site: UnsafePointer<CChar>) {
        guard let slot = slotOfThisThread() else { return }
        let length = min(strlen(site), Self.slotBytes - 8)
        (base + slot + 8).copyMemory(from: site, byteCount: length)
        bm_atomic_store(counter(slot), UInt64(length))
    }

    func endCall() {
        guard let slot = slotOfThisThread() else { return }
        bm_atomic_store(counter(slot), 0)
    }

    private func slotOfThisThread() -> Int? {
        var index = Int(bitPattern: pthread_getspecific(Self.slotKey)) - 1
        if index < 0 {
            index = nextSlot.add(1, ordering: .relaxed).oldValue
            pthread_setspecific(Self.slotKey, UnsafeRawPointer(bitPattern: index + 1))
        }
        return index < Self.slots ? Self.slotsOffset + index * Self.slotBytes : nil
    }

    // MARK: - The parent reads

    /// What the board says, once the host has ended.
    struct Report: Equatable {
        var accepted: UInt64
        var answered: UInt64
        /// Results whose write was under way when the host ended: they may have reached the output.
        var beingWritten: UInt64 = 0
        /// The status the host ended with on purpose; nil if it did not end on purpose.
        var finished: Int32?
        var spool: String?
        /// The plugin calls under way when the host ended.
        var calls: [String]
    }

    func read() -> Report {
        let finished = bm_atomic_load(counter(16))
        let spoolLength = Int(min(bm_atomic_load(counter(Self.spoolOffset)), UInt64(Self.spoolBytes)))
        let spool = spoolLength == 0 ? nil : String(decoding: UnsafeRawBufferPointer(start: base + Self.spoolOffset + 8, count: spoolLength), as: UTF8.self)
        var calls: [String] = []
        for index in 0..<Self.slots {
            let slot = Self.slotsOffset + index * Self.slotBytes
            let length = Int(min(bm_atomic_load(counter(slot)), UInt64(Self.slotBytes - 8)))
            if length > 0 { calls.append(String(decoding: UnsafeRawBufferPointer(start: base + slot + 8, count: length), as: UTF8.self)) }
        }
        let begun = bm_atomic_load(counter(Self.outputBegunOffset)), written = bm_atomic_load(counter(Self.outputWrittenOffset))
        return Report(accepted: bm_atomic_load(counter(0)), answered: bm_atomic_load(counter(8)) &+ written,
                      beingWritten: begun > written ? begun - written : 0,
                      finished: finished == 0 ? nil : Int32(finished - 1), spool: spool, calls: calls)
    }
}
