import Batchman
import BatchmanTesting
import Dispatch
import Foundation
import Synchronization
import Testing

/// The whole path from submit to result against a model, with random input: keys, ids that
/// repeat, scopes with a sink each, batches answered in any order and any shape (in order,
/// reversed, missing, failed, retried, thrown). Every submission carries a sequence number in
/// its payload and its tag, so a result that reaches the wrong job, the wrong sink, or arrives
/// twice is seen. The one-thread test predicts every refusal; the threaded one checks that every
/// job gets exactly one result, where it was submitted, while submitting and settling overlap.
/// Half the one-thread runs end in a drain, half in an abandon.
@Suite(.timeLimit(.minutes(5)))
struct BatcherModelTests {
    /// A processor that holds every batch until the test answers it.
    final class HeldProcessor: QueueingBatchProcessor, Sendable {
        typealias Payload = Int
        typealias Output = Int
        typealias Completion = @Sendable (Result<[JobOutcome<Int>], any Error>) -> Void

        let held = Mutex<[(batch: Batch<Int>, completion: Completion)]>([])
        /// Signalled once per batch handed over, for a threaded test's settlers.
        let arrived = DispatchSemaphore(value: 0)
        /// One entry per batch handed over, for an async test to wait on.
        let arrivals = RecordLog<Void>()

        func enqueue(_ batch: Batch<Int>, completion: @escaping Completion) {
            held.withLock { $0.append((batch, completion)) }
            arrivals.append(())
            arrived.signal()
        }

        /// Takes the held batch at `index` (modulo the count) out, or nil if none is held.
        func take(at index: Int) -> (batch: Batch<Int>, completion: Completion)? {
            held.withLock { held in held.isEmpty ? nil : held.remove(at: index % held.count) }
        }
    }

    /// What a processor answers for one batch.
    enum Shape: CaseIterable {
        case allCompletedInOrder, reversed, someMissing, someFailed, someRetried, unknownExtra, throwsError
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "the processor threw" }
    }

    static func outcomes(for batch: Batch<Int>, shape: Shape, using random: inout some RandomNumberGenerator) throws -> [JobOutcome<Int>] {
        let jobs = batch.jobs
        switch shape {
        case .allCompletedInOrder:
            return jobs.map { .completed($0, $0.payload) }
        case .reversed:
            return jobs.reversed().map { .completed($0, $0.payload) }
        case .someMissing:
            return jobs.filter { _ in Bool.random(using: &random) }.map { .completed($0, $0.payload) }
        case .someFailed:
            return jobs.map { Bool.random(using: &random) ? .completed($0, $0.payload) : .failed($0, "no") }
        case .someRetried:
            return jobs.map { Bool.random(using: &random) ? .completed($0, $0.payload) : .retry($0, "later") }
        case .unknownExtra:
            return jobs.map { .completed($0, $0.payload) } + [JobOutcome(key: batch.key, id: "not-a-job", status: .completed, result: -1)]
        case .throwsError:
            throw Failure()
        }
    }

    /// Answers one held batch, chosen at random, with a random shape.
    static func answer(_ processor: HeldProcessor, using random: inout some RandomNumberGenerator) -> Bool {
        guard let (batch, completion) = processor.take(at: Int.random(in: 0..<1000, using: &random)) else { return false }
        guard batch.beginCall() else {
            completion(.success([]))
            return true
        }
        let shape = Shape.allCases.randomElement(using: &random)!
        completion(Result { try outcomes(for: batch, shape: shape, using: &random) })
        return true
    }

    /// Where results arrive: one sink per scope, plus scope 0's per-job callbacks.
    final class Channel: ResultSink, Sendable {
        let name: String
        let scope: UInt32
        let log: RecordLog<(channel: String, result: JobResult<Int, Int>)>

        init(name: String, scope: UInt32, log: RecordLog<(channel: String, result: JobResult<Int, Int>)>) {
            self.name = name
            self.scope = scope
            self.log = log
        }

        func receive(_ results: [JobResult<Int, Int>]) {
            for result in results { log.append((name, result)) }
        }
    }

    struct Identity: Hashable {
        let key: String
        let id: String
        let scope: UInt32
    }

    struct Submission {
        let identity: Identity
        let channel: String
    }

    /// The model: what is held, and what each submission expects.
    struct Model {
        var held: [Identity: Int] = [:]
        var heldPerKey: [String: Int] = [:]
        var submissions: [Int: Submission] = [:]
        var answered: Set<Int> = []
        var expectedRefusal: [Int: FailureReason] = [:]
        let maxPending: Int?

        /// Records a submission and what should become of it at once.
        mutating func submit(_ sequence: Int, _ identity: Identity, channel: String) {
            submissions[sequence] = Submission(identity: identity, channel: channel)
            if held[identity] != nil {
                expectedRefusal[sequence] = .duplicate
            } else if let maxPending, heldPerKey[identity.key, default: 0] >= maxPending {
                expectedRefusal[sequence] = .overloaded
            } else {
                held[identity] = sequence
                heldPerKey[identity.key, default: 0] += 1
            }
        }

        /// Checks a result against the model and takes its job out.
        mutating func receive(_ channel: String, _ result: JobResult<Int, Int>, sourceLocation: SourceLocation = #_sourceLocation) {
            let sequence = result.payload
            guard let submission = submissions[sequence] else {
                Issue.record("a result for sequence \(sequence), which was never submitted", sourceLocation: sourceLocation)
                return
            }
            #expect(answered.insert(sequence).inserted, "sequence \(sequence) answered twice", sourceLocation: sourceLocation)
            #expect(channel == submission.channel, "sequence \(sequence) went to \(channel), not \(submission.channel)", sourceLocation: sourceLocation)
            // Per-job callbacks take no tag.
            #expect(result.tag.value == (channel == "callback" ? 0 : UInt64(sequence)), sourceLocation: sourceLocation)
            #expect(result.tag.scope == submission.identity.scope, sourceLocation: sourceLocation)
            #expect(result.key == submission.identity.key && result.id == submission.identity.id, sourceLocation: sourceLocation)
            if let refusal = expectedRefusal[sequence] {
                #expect(result.errorReason == refusal, "sequence \(sequence)", sourceLocation: sourceLocation)
                return
            }
            #expect(result.errorReason != .duplicate && result.errorReason != .overloaded, "sequence \(sequence) was refused: \(result.errorMessage ?? "")",
                    sourceLocation: sourceLocation)
            if result.status == .completed, let output = result.result {
                // Outcomes carry no scope: one answered out of order may be another scope's job's
                // of the same key and id in the batch (documented); never any other job's.
                let source = submissions[output].map { ($0.identity.key, $0.identity.id) }
                #expect(source.map { $0 == (submission.identity.key, submission.identity.id) } ?? false,
                        "sequence \(sequence) got the output of \(output)", sourceLocation: sourceLocation)
            }
            #expect(held[submission.identity] == sequence, "sequence \(sequence) answered while not held", sourceLocation: sourceLocation)
            held[submission.identity] = nil
            heldPerKey[submission.identity.key, default: 0] -= 1
        }
    }

    @Test(arguments: 0..<24)
    func everyJobGetsOneResultWhereItWasSubmittedWhateverTheProcessorAnswers(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        var config = BatcherConfig(frequency: .seconds(3600), maxBatchSize: Int.random(in: 1...5, using: &random))
        config.maxInFlight = Int.random(in: 1...3, using: &random)
        config.maxAttempts = Int.random(in: 1...3, using: &random)
        config.initialBackoff = .zero
        config.maxBackoff = .zero
        if Bool.random(using: &random) {
            config.maxPending = Int.random(in: 2...8, using: &random)
            config.overflow = .reject
        }
        let processor = HeldProcessor()
        let batchman = try Batchman<Int, Int, ManualClock>(
            config: BatchmanConfig(defaults: config), clock: ManualClock(), logger: .silent) { _ in processor }
        let log = RecordLog<(channel: String, result: JobResult<Int, Int>)>()
        let channels = (0..<3).map { Channel(name: "sink \($0)", scope: UInt32($0), log: log) }
        var model = Model(maxPending: config.maxPending)
        var seen = 0
        func catchUp() {
            let entries = log.elements
            for entry in entries[seen...] { model.receive(entry.channel, entry.result) }
            seen = entries.count
        }

        var sequence = 0
        for _ in 0..<400 {
            if Int.random(in: 0..<3, using: &random) == 0, Self.answer(processor, using: &random) {
                catchUp()
                continue
            }
            let count = Int.random(in: 1...4, using: &random)
            let scope = UInt32.random(in: 0..<3, using: &random)
            let byCallback = scope == 0 && Bool.random(using: &random)
            var jobs: [Job<Int>] = []
            for _ in 0..<count {
                sequence += 1
                let identity = Identity(key: ["a", "b", "c"].randomElement(using: &random)!, id: "\(Int.random(in: 0..<6, using: &random))",
                                        scope: scope)
                model.submit(sequence, identity, channel: byCallback ? "callback" : channels[Int(scope)].name)
                jobs.append(Job(id: identity.id, key: identity.key, payload: sequence, tag: JobTag(scope: scope, value: UInt64(sequence))))
            }
            if byCallback {
                for job in jobs {
                    batchman.submit(id: job.id, key: job.key, payload: job.payload) { log.append(("callback", $0)) }
                }
            } else {
                batchman.submit(contentsOf: jobs, to: channels[Int(scope)])
            }
            catchUp()
            // What is held can be looked up, with its payload.
            if let (identity, heldSequence) = model.held.randomElement(using: &random) {
                #expect(batchman.getJob(key: identity.key, id: identity.id, scope: identity.scope)?.payload == heldSequence)
            }
            #expect(batchman.statistics().total.pending == model.held.count)
        }
        if seed % 2 == 1 {
            // Half the runs end as a host whose output went away ends: abandoned with batches
            // held, waiting and open alike. Every job still held fails; the held batches' late
            // answers are dropped, never a second result.
            await batchman.abandon("output gone")
            catchUp()
            while Self.answer(processor, using: &random) { catchUp() }
            #expect(model.held.isEmpty)
            #expect(model.answered.count == sequence)
            let abandoned = log.elements.filter { $0.result.errorReason == .shutdownBatch }
            #expect(abandoned.allSatisfy { $0.result.errorMessage == "output gone" })
            return
        }
        while Self.answer(processor, using: &random) { catchUp() }
        // Shutdown cuts what waits; answer those batches as they come.
        let shutdown = Task { await batchman.shutdown() }
        while model.answered.count < sequence {
            let arrived = processor.arrivals.count
            if !Self.answer(processor, using: &random) { await processor.arrivals.wait(forCount: arrived + 1) }
            catchUp()
        }
        await shutdown.value
        catchUp()
        #expect(model.held.isEmpty)
        #expect(model.answered.count == sequence)
    }

    /// Three producers (one scope and sink each) and two threads answering batches at once, with
    /// retries: every job's result reaches its own sink exactly once.
    @Test func overlappingProducersAndSettlersRouteEveryResultToItsSink() async throws {
        let processor = HeldProcessor()
        var config = BatcherConfig(frequency: .seconds(3600), maxBatchSize: 7, maxAttempts: 3, initialBackoff: .zero, maxBackoff: .zero)
        config.maxInFlight = 4
        let batchman = try Batchman<Int, Int, ManualClock>(
            config: BatchmanConfig(defaults: config), clock: ManualClock(), logger: .silent) { _ in processor }
        let perProducer = 6000
        let producers = 3
        let tally = Tally(expected: producers * perProducer)
        // Unowned by the core while jobs are held: kept alive here.
        let sinks = (0..<producers).map { Collector(scope: UInt32($0), tally: tally) }
        let submitted = DispatchSemaphore(value: 0)
        for settler in 0..<2 {
            Thread.detachNewThread {
                var random = SplitMix64(seed: UInt64(100 + settler))
                while !tally.stop.load(ordering: .relaxed) {
                    processor.arrived.wait()
                    _ = Self.answer(processor, using: &random)
                }
            }
        }
        for producer in 0..<producers {
            Thread.detachNewThread {
                var random = SplitMix64(seed: UInt64(producer))
                var next = 0
                while next < perProducer {
                    let count = min(perProducer - next, Int.random(in: 1...40, using: &random))
                    let jobs = (next..<next + count).map { index in
                        let payload = producer * 1_000_000 + index
                        return Job(id: "\(index)", key: "k\(Int.random(in: 0..<4, using: &random))", payload: payload,
                                   tag: JobTag(scope: UInt32(producer), value: UInt64(payload)))
                    }
                    batchman.submit(contentsOf: jobs, to: sinks[producer])
                    next += count
                }
                submitted.signal()
            }
        }
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                for _ in 0..<producers { submitted.wait() }
                continuation.resume()
            }
        }
        // Batches still open are cut by shutdown; the settlers answer them.
        let shutdown = Task { await batchman.shutdown() }
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                tally.done.wait()
                continuation.resume()
            }
        }
        await shutdown.value
        tally.stop.store(true, ordering: .relaxed)
        for _ in 0..<2 { processor.arrived.signal() }
        withExtendedLifetime(sinks) {}

        #expect(tally.misrouted.withLock { $0 }.isEmpty)
        for producer in 0..<producers {
            let payloads = tally.received.withLock { $0[UInt32(producer), default: []] }.sorted()
            #expect(payloads == (0..<perProducer).map { producer * 1_000_000 + $0 }, "producer \(producer): each job once")
        }
    }
}

/// What the threaded test's sinks received.
final class Tally: Sendable {
    let received = Mutex<[UInt32: [Int]]>([:])
    let misrouted = Mutex<[String]>([])
    let remaining: Atomic<Int>
    let done = DispatchSemaphore(value: 0)
    /// Tells the settler threads to end.
    let stop = Atomic<Bool>(false)

    init(expected: Int) {
        remaining = Atomic(expected)
    }
}

/// A sink of one scope that checks each result is of its scope.
final class Collector: ResultSink, Sendable {
    let scope: UInt32
    let tally: Tally

    init(scope: UInt32, tally: Tally) {
        self.scope = scope
        self.tally = tally
    }

    func receive(_ results: [JobResult<Int, Int>]) {
        for result in results where result.tag.scope != scope || result.payload / 1_000_000 != Int(scope) {
            tally.misrouted.withLock { $0.append("sink \(scope) got \(result.payload) (scope \(result.tag.scope))") }
        }
        tally.received.withLock { $0[scope, default: []].append(contentsOf: results.map(\.payload)) }
        if tally.remaining.subtract(results.count, ordering: .acquiringAndReleasing).newValue == 0 { tally.done.signal() }
    }
}

/// A small seeded generator, so that a failing seed can be run again.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1330_11EB
        return value ^ (value >> 31)
    }
}
