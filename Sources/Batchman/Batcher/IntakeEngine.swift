/// The producers' half of a key's batcher: which jobs the key holds (its duplicate index) and
/// the open window new jobs join, until a batch is cut from it.
///
/// A key's state is split in two, each half under a lock of its own, so that the thread that
/// submits and the thread that settles batches do not take turns on one lock (by perf, the
/// shared lock and the cache lines both sides wrote cost more than the work itself): this
/// intake, which every submit takes, and the ``FlightEngine``, which owns cut batches from the
/// moment they are cut until their results are out. The index is the one thing both need: the
/// settling side hands a settled batch's slots back with ``release(_:)``, one call per batch,
/// and the next event here takes them out of the index (on the producer's thread, where its
/// cache lines are).
///
/// Not generic, and pure: each event returns what to do, and the generic ``Batcher`` keeps the
/// open window's jobs and handlers in step with ``open``.
@usableFromInline struct IntakeEngine: Sendable {
    /// The intake's lifecycle.
    @usableFromInline enum Phase: Equatable, Sendable {
        /// Taking jobs.
        case accepting
        /// Shutdown began: new jobs are refused, and every job that joins the open window (a
        /// retried one) is cut at once.
        case draining
    }

    /// Why a job was not accepted.
    @usableFromInline enum Refusal: Equatable, Sendable {
        case shuttingDown
        case duplicate
        case tooLarge(size: Int, limit: Int)
    }

    /// A batch cut from the open window: every job in it, by slot, in order.
    @usableFromInline struct Cut: Equatable, Sendable {
        @usableFromInline let id: UInt64
        @usableFromInline let reason: FlushReason
        @usableFromInline let slots: [Int]

        @usableFromInline init(id: UInt64, reason: FlushReason, slots: [Int]) {
            self.id = id
            self.reason = reason
            self.slots = slots
        }
    }

    /// What a job joining the open window caused, beyond joining it.
    @usableFromInline struct Effects: Equatable, Sendable {
        /// The window was cut before the job joined (it would have passed `maxBatchBytes`).
        @usableFromInline var cutBefore: Cut?
        /// The window, with the job, was cut (it reached `maxBatchSize`, or the key is draining).
        @usableFromInline var cutAfter: Cut?
        /// The job opened a window: when that window is due (`frequency` from now).
        @usableFromInline var windowDeadline: Duration?
        /// The number of the window the deadline is for.
        @usableFromInline var window: UInt64 = 0

        @usableFromInline init(cutBefore: Cut? = nil, cutAfter: Cut? = nil, windowDeadline: Duration? = nil, window: UInt64 = 0) {
            self.cutBefore = cutBefore
            self.cutAfter = cutAfter
            self.windowDeadline = windowDeadline
            self.window = window
        }
    }

    /// What became of a submitted job. Plain values only, so that the hot path copies no
    /// arrays around (see `Job.init(copying:)`).
    @usableFromInline enum SubmitAction: Equatable, Sendable {
        /// The job holds `slot` now and joined the open window, with nothing else to do: what
        /// almost every job gets.
        case accepted(slot: Int)
        /// The job holds `slot` now, and joining the open window does more (it opens a window,
        /// or cuts one): ``join(_:size:now:)`` puts it there and says what.
        case acceptedToJoin(slot: Int)
        case refused(Refusal)
        /// The key holds `maxPending` jobs already.
        case full
    }

    /// One job held: its identity, for the duplicate check, and its hash, so that taking it out
    /// of the index hashes nothing.
    struct SlotRecord: Sendable {
        var identity: JobIdentity
        let hash: Int
    }

    let policy: KeyPolicy
    // The settings read on every submit, read through the policy (which every key on the same
    // settings shares) rather than copied into each key: an idle key's bytes count (W5, W7).
    var maxBatchSize: Int { policy.config.maxBatchSize }
    var maxBatchBytes: Int? { policy.config.maxBatchBytes }
    var maxPending: Int? { policy.config.maxPending }
    var frequency: Duration { policy.config.frequency }

    @usableFromInline private(set) var phase = Phase.accepting
    private var slots: [SlotRecord] = []
    private var freeSlots: [Int] = []
    /// Slots by job identity.
    private var index = JobIndex()
    /// Slots of settled jobs, still in the index until the next event here takes them out.
    private var released: [Int] = []
    /// The open window's jobs, in the order they joined it.
    private var open: [Int] = []
    private var openBytes = 0
    /// The open window's number: it goes up each time a batch is cut.
    private var window: UInt64 = 1
    /// Jobs accepted since the key began.
    @usableFromInline private(set) var accepted = 0

    @usableFromInline init(policy: KeyPolicy) {
        self.policy = policy
    }

    /// Jobs held: waiting here, or in a batch, or for a retry.
    @usableFromInline var held: Int { index.count - released.count }

    /// Whether the open window holds no job.
    @usableFromInline var isOpenWindowEmpty: Bool { open.isEmpty }

    // MARK: - Events

    /// A job arrives.
    @usableFromInline mutating func submit(_ identity: JobIdentity, size: Int) -> SubmitAction {
        guard phase == .accepting else { return .refused(.shuttingDown) }
        if !released.isEmpty { reclaim() }
        let hash = IdentityHash.hash(of: identity)
        if let maxBatchBytes, size > maxBatchBytes {
            return .refused(slot(of: identity, hash: hash) == nil ? .tooLarge(size: size, limit: maxBatchBytes) : .duplicate)
        }
        if let maxPending, index.count >= maxPending {
            return slot(of: identity, hash: hash) == nil ? .full : .refused(.duplicate)
        }
        // One probe for the duplicate check and the insert.
        let slot = freeSlots.last ?? slots.count
        let duplicate = withIndex { index, slots in
            index.insert(slot, hash: hash, matches: { slots[$0].identity == identity })
        }
        if duplicate != nil { return .refused(.duplicate) }
        let record = SlotRecord(identity: identity, hash: hash)
        if freeSlots.isEmpty {
            slots.append(record)
        } else {
            freeSlots.removeLast()
            slots[slot] = record
        }
        accepted += 1
        // The common case: the job joins a window that is open already and does not fill it.
        if !open.isEmpty, open.count + 1 < maxBatchSize, maxBatchBytes.map({ openBytes + size <= $0 }) ?? true {
            open.append(slot)
            openBytes += size
            return .accepted(slot: slot)
        }
        return .acceptedToJoin(slot: slot)
    }

    /// A held job joins the open window: one just accepted with ``SubmitAction/acceptedToJoin(slot:)``,
    /// or one retried after its backoff. `now` is read only if the job opens a window.
    @usableFromInline mutating func join(_ slot: Int, size: Int, now: () -> Duration) -> Effects {
        var effects = Effects()
        if let maxBatchBytes, !open.isEmpty, openBytes + size > maxBatchBytes {
            effects.cutBefore = cut(reason: .bytes)
        }
        open.append(slot)
        openBytes += size
        if open.count >= maxBatchSize || phase == .draining {
            effects.cutAfter = cut(reason: phase == .draining ? .shutdown : .size)
        } else if open.count == 1 {
            effects.windowDeadline = now() + frequency
            effects.window = window
        }
        return effects
    }

    /// The open window's deadline came: cuts it if it is still window `number`.
    @usableFromInline mutating func deadlineReached(window number: UInt64) -> Cut? {
        guard number == window, !open.isEmpty else { return nil }
        return cut(reason: .time)
    }

    /// Refuses new jobs from now on, and cuts the open window.
    @usableFromInline mutating func drain() -> Cut? {
        phase = .draining
        return open.isEmpty ? nil : cut(reason: .shutdown)
    }

    /// Gives up on the open window's jobs (a shutdown timed out): they leave, and are returned
    /// for their results. New jobs are refused from now on.
    @usableFromInline mutating func abandon() -> [Int] {
        phase = .draining
        let abandoned = open
        open = []
        openBytes = 0
        window += 1
        release(abandoned)
        return abandoned
    }

    /// The jobs in `settled` have their results: their identities are free again (from the
    /// next event on; see the type's discussion).
    @usableFromInline mutating func release(_ settled: [Int]) {
        released.append(contentsOf: settled)
        // A key that holds no job keeps no storage for jobs: an idle key costs its counters and
        // its table entry, whatever it once held.
        if released.count == index.count, open.isEmpty {
            slots = []
            freeSlots = []
            index = JobIndex()
            released = []
        }
    }

    /// The slot of the held job with `identity`.
    @usableFromInline mutating func lookUp(_ identity: JobIdentity) -> Int? {
        if !released.isEmpty { reclaim() }
        return slot(of: identity, hash: IdentityHash.hash(of: identity))
    }

    /// The position in the open window of the job in `slot`, if it waits there.
    @usableFromInline func openPosition(of slot: Int) -> Int? {
        open.firstIndex(of: slot)
    }

    // MARK: - Internals

    private func slot(of identity: JobIdentity, hash: Int) -> Int? {
        index.find(hash: hash, matches: { slots[$0].identity == identity })
    }

    /// Runs `body` on the index with the slot table beside it: the index is moved out for the
    /// call, so that changing it while reading the slots is not an overlapping access to `self`.
    private mutating func withIndex<Result>(_ body: (inout JobIndex, _ slots: [SlotRecord]) -> Result) -> Result {
        var moved = JobIndex()
        swap(&moved, &index)
        defer { swap(&moved, &index) }
        return body(&moved, slots)
    }

    /// Takes the released slots out of the index and frees them.
    private mutating func reclaim() {
        for slot in released {
            index.remove(slot, hash: slots[slot].hash)
            slots[slot].identity = JobIdentity(key: "", id: "")
            freeSlots.append(slot)
        }
        released.removeAll(keepingCapacity: true)
    }

    private mutating func cut(reason: FlushReason) -> Cut {
        let cut = Cut(id: policy.batchIds.next(), reason: reason, slots: open)
        open = []
        openBytes = 0
        window += 1
        return cut
    }
}
