import Synchronization

/// A Prometheus histogram: observations counted by the first upper bound they do not exceed,
/// with their sum. Observations come a batch at a time, under one lock per batch.
final class Histogram: Sendable {
    struct Counts: Equatable, Sendable {
        /// Per bucket, not cumulative; one more than `bounds` (the `+Inf` bucket).
        var buckets: [UInt64]
        var sum: Double = 0
        var count: UInt64 = 0
    }

    let bounds: [Double]
    private let counts: Mutex<Counts>

    init(bounds: [Double]) {
        self.bounds = bounds
        counts = Mutex(Counts(buckets: [UInt64](repeating: 0, count: bounds.count + 1)))
    }

    /// Jobs per batch: 1 to 10,000.
    static let sizeBounds: [Double] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
    /// Seconds, from 100 microseconds to a minute.
    static let secondsBounds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    func observe(_ value: Double) {
        let bucket = self.bucket(of: value)
        counts.withLock { counts in
            counts.buckets[bucket] += 1
            counts.sum += value
            counts.count += 1
        }
    }

    /// Observes every value, taking the lock once.
    func observe(_ values: some Sequence<Double>) {
        var local = [UInt64](repeating: 0, count: bounds.count + 1)
        var sum = 0.0
        var count: UInt64 = 0
        for value in values {
            local[bucket(of: value)] += 1
            sum += value
            count += 1
        }
        guard count > 0 else { return }
        counts.withLock { counts in
            for index in local.indices where local[index] != 0 { counts.buckets[index] += local[index] }
            counts.sum += sum
            counts.count += count
        }
    }

    var snapshot: Counts { counts.withLock { $0 } }

    /// The first bucket whose bound is at least `value` (binary search: bounds are sorted).
    private func bucket(of value: Double) -> Int {
        var low = 0, high = bounds.count
        while low < high {
            let middle = (low + high) / 2
            if value <= bounds[middle] { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
