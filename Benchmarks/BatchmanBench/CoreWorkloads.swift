import Batchman
import CBatchmanSystem
import Dispatch
import Foundation
import Synchronization

/// Completes every job with its payload: as little work as a processor can do.
///
/// Not generic, as a real processor is not: a generic one reached through `any BatchProcessor`
/// runs its unspecialised witness, which cost W1 about 1,600 instructions a job (by callgrind)
/// that the floor, calling it directly, did not pay.
struct NoopProcessor: BatchProcessor {
    func process(_ batch: Batch<Int>) async throws -> [JobOutcome<Int>] {
        batch.jobs.map { .completed($0, $0.payload) }
    }
}

/// Counts results and signals when the last one arrives.
final class Countdown: Sendable {
    private let remaining: Atomic<Int>
    private let done = DispatchSemaphore(value: 0)

    init(_ count: Int) { remaining = Atomic(count) }

    func tick(_ count: Int = 1) {
        if remaining.subtract(count, ordering: .acquiringAndReleasing).newValue == 0 { done.signal() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { [done] in
                done.wait()
                continuation.resume()
            }
        }
    }
}

/// Counts results a batch at a time.
final class CountingSink: ResultSink {
    let countdown: Countdown

    init(_ count: Int) { countdown = Countdown(count) }

    func receive(_ results: [JobResult<Int, Int>]) { countdown.tick(results.count) }
}

enum CoreWorkloads {
    static let ids = (0..<1_000_000).map { String($0) }

    /// The floor: append the jobs to an array and call the no-op processor every 1000, with no
    /// batcher at all. What any batcher must cost at least.
    static func floor(jobs: Int) async -> Double {
        let processor = NoopProcessor()
        let now = Date()
        let start = ContinuousClock.now
        var pending: [Job<Int>] = []
        pending.reserveCapacity(1000)
        var completed = 0
        var batchId: UInt64 = 0
        for index in 0..<jobs {
            pending.append(Job(id: ids[index], key: "k", payload: index, submittedAt: now))
            if pending.count == 1000 || index == jobs - 1 {
                batchId += 1
                completed += try! await processor.process(Batch(id: batchId, key: "k", jobs: pending, reason: .size)).count
                pending.removeAll(keepingCapacity: true)
            }
        }
        precondition(completed == jobs)
        return seconds(since: start) / Double(jobs) * 1e9
    }

    /// W1, callback API: one producer submits `jobs` jobs; ns/job from first submit to last result.
    static func throughputCallback(jobs: Int) async throws -> (nsPerJob: Double, peakMiB: Double) {
        ProcessMeter.resetPeakResident()
        let batchman = try Batchman<Int, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: .milliseconds(10), maxBatchSize: 1000)) { _ in NoopProcessor() }
        let countdown = Countdown(jobs)
        let start = ContinuousClock.now
        for index in 0..<jobs {
            batchman.submit(id: ids[index], key: "k", payload: index) { _ in countdown.tick() }
        }
        await countdown.wait()
        let elapsed = seconds(since: start)
        await batchman.shutdown()
        return (elapsed / Double(jobs) * 1e9, ProcessMeter.peakResidentMiB())
    }

    /// W6: W1's workload through `submit(contentsOf:)`, 1000 jobs a call.
    static func throughputBatchSubmit(jobs: Int) async throws -> Double {
        let batchman = try Batchman<Int, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: .milliseconds(10), maxBatchSize: 1000)) { _ in NoopProcessor() }
        let countdown = Countdown(jobs)
        let start = ContinuousClock.now
        var index = 0
        while index < jobs {
            let end = min(jobs, index + 1000)
            batchman.submit(contentsOf: (index..<end).map { (id: ids[$0], key: "k", payload: $0) }) { _ in countdown.tick() }
            index = end
        }
        await countdown.wait()
        let elapsed = seconds(since: start)
        await batchman.shutdown()
        return elapsed / Double(jobs) * 1e9
    }

    /// W6, the primary path: jobs made by the caller, through `submit(contentsOf:to:)`, 1000 a
    /// call, their results a batch at a time to one `ResultSink`.
    static func throughputBatchSubmitToSink(jobs: Int) async throws -> Double {
        let batchman = try Batchman<Int, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: .milliseconds(10), maxBatchSize: 1000)) { _ in NoopProcessor() }
        let sink = CountingSink(jobs)
        let now = Date()
        let start = ContinuousClock.now
        var index = 0
        while index < jobs {
            let end = min(jobs, index + 1000)
            batchman.submit(contentsOf: (index..<end).map { Job(id: ids[$0], key: "k", payload: $0, submittedAt: now) }, to: sink)
            index = end
        }
        await sink.countdown.wait()
        let elapsed = seconds(since: start)
        await batchman.shutdown()
        return elapsed / Double(jobs) * 1e9
    }

    /// W1, await API: 1000 tasks each awaiting `jobs / 1000` results in turn.
    static func throughputAwait(jobs: Int) async throws -> Double {
        let batchman = try Batchman<Int, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: .milliseconds(10), maxBatchSize: 1000)) { _ in NoopProcessor() }
        let producers = 1000
        let start = ContinuousClock.now
        await withTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var index = producer
                    while index < jobs {
                        _ = await batchman.submit(id: ids[index], key: "k", payload: index)
                        index += producers
                    }
                }
            }
        }
        let elapsed = seconds(since: start)
        await batchman.shutdown()
        return elapsed / Double(jobs) * 1e9
    }

    /// W2: `keys` keys x `perKey` jobs round-robin, maxBatchSize 100.
    static func manyKeys(keys: Int, perKey: Int) async throws -> Double {
        let batchman = try Batchman<Int, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: .milliseconds(10), maxBatchSize: 100)) { _ in NoopProcessor() }
        let keyNames = (0..<keys).map { "key-\($0)" }
        let total = keys * perKey
        let countdown = Countdown(total)
        let start = ContinuousClock.now
        for round in 0..<perKey {
            for key in keyNames {
                batchman.submit(id: ids[round], key: key, payload: round) { _ in countdown.tick() }
            }
        }
        await countdown.wait()
        let elapsed = seconds(since: start)
        await batchman.shutdown()
        return elapsed / Double(total) * 1e9
    }

    /// W3: one job every millisecond for `duration`; lateness of each time-triggered flush in ms.
    static func timerLateness(duration: Duration) async throws -> [Double] {
        let lateness = Mutex<[Double]>([])
        let frequency = Duration.milliseconds(50)
        let processor = ClosureProcessor<ContinuousClock.Instant, Int> { batch in
            let called = ContinuousClock.now
            let oldest = batch.jobs.map(\.payload).min()!
            let late = oldest.duration(to: called) - frequency
            lateness.withLock { $0.append(Double(late.components.attoseconds) / 1e15 + Double(late.components.seconds) * 1e3) }
            return batch.jobs.map { .completed($0, 0) }
        }
        let batchman = try Batchman<ContinuousClock.Instant, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: frequency, maxBatchSize: 1000)) { _ in processor }
        let end = ContinuousClock.now.advanced(by: duration)
        var index = 0
        while ContinuousClock.now < end {
            batchman.submit(id: ids[index], key: "k", payload: .now) { _ in }
            index += 1
            usleep(1000)
        }
        await batchman.shutdown()
        return lateness.withLock { Array($0.dropLast()) }  // the last batch was cut by shutdown
    }

    /// W4: maxBatchSize 100, frequency 10 s, `jobs` jobs back to back; microseconds from each
    /// batch's 100th submit to its processor call. With `maxInFlight` 1 a batch also waits for
    /// the one before it (queueing); with `maxInFlight` above the number of batches it never
    /// does, so what is left is the trigger: cutting the batch and handing it over.
    static func sizeTriggerLatency(jobs: Int, maxInFlight: Int = 1) async throws -> [Double] {
        let latencies = Mutex<[Double]>([])
        let processor = ClosureProcessor<ContinuousClock.Instant, Int> { batch in
            let called = ContinuousClock.now
            let waited = batch.jobs.last!.payload.duration(to: called)
            latencies.withLock { $0.append(Double(waited.components.attoseconds) / 1e12 + Double(waited.components.seconds) * 1e6) }
            return batch.jobs.map { .completed($0, 0) }
        }
        let batchman = try Batchman<ContinuousClock.Instant, Int, ContinuousClock>(
            config: BatchmanConfig(defaults: BatcherConfig(frequency: .seconds(10), maxBatchSize: 100, maxInFlight: maxInFlight))) { _ in processor }
        for index in 0..<jobs {
            batchman.submit(id: ids[index], key: "k", payload: .now) { _ in }
        }
        await batchman.shutdown()
        return latencies.withLock { $0 }
    }

    /// W7: `keys` keys that each had one job, answered, so every key is idle; then the time
    /// `shutdown()` takes to drain them, and heap bytes each idle key still holds.
    static func idleDrain(keys: Int) async throws -> (drainSeconds: Double, heapBytesPerIdleKey: Double) {
        let heapBefore = bm_heap_bytes_in_use()
        let batchman = try Batchman<Int, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: .milliseconds(1), maxBatchSize: 1)) { _ in NoopProcessor() }
        let countdown = Countdown(keys)
        for index in 0..<keys { batchman.submit(id: "1", key: "idle-key-\(index)", payload: index) { _ in countdown.tick() } }
        await countdown.wait()
        let heapAfter = bm_heap_bytes_in_use()
        let start = ContinuousClock.now
        await batchman.shutdown()
        return (seconds(since: start), Double(heapAfter - heapBefore) / Double(keys))
    }

    /// W5: `keys` keys with one pending job each, frequency 60 s; CPU seconds used while idle
    /// for `idle`, and bytes per pending job: heap bytes allocated (exact, whatever ran before)
    /// and resident bytes (depends on memory freed by earlier workloads, so lower in a full run).
    static func idleKeys(keys: Int, idle: Duration) async throws -> (cpuSeconds: Double, heapBytesPerJob: Double, residentBytesPerJob: Double) {
        let batchman = try Batchman<Int, Int, ContinuousClock>(
            config: BatchmanConfig(frequency: .seconds(60), maxBatchSize: 10)) { _ in NoopProcessor() }
        let keyNames = (0..<keys).map { "idle-key-\($0)" }
        let heapBefore = bm_heap_bytes_in_use()
        let before = ProcessMeter.residentKiB()
        for key in keyNames { batchman.submit(id: "1", key: key, payload: 1) { _ in } }
        let after = ProcessMeter.residentKiB()
        let heapAfter = bm_heap_bytes_in_use()
        let cpuBefore = ProcessMeter.cpuSeconds()
        try await Task.sleep(for: idle)
        let cpu = ProcessMeter.cpuSeconds() - cpuBefore
        await batchman.shutdown()
        return (cpu, Double(heapAfter - heapBefore) / Double(keys), (after - before) * 1024 / Double(keys))
    }
}

