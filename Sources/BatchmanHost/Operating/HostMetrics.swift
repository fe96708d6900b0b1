import Batchman
import FoundationEssentials
import Synchronization

/// What the host measures as it goes for `/metrics`, beyond the counters the core and the
/// registry keep: the histograms of batch sizes, plugin call times and job latencies, by
/// manifest entry. An entry's histograms are made on first use; entries come from manifests,
/// so their number is bounded by the manifests a run loads, never by the keys it sees.
final class HostMetrics: Sendable {
    final class Entry: Sendable {
        let batchSize = Histogram(bounds: Histogram.sizeBounds)
        let batchDuration = Histogram(bounds: Histogram.secondsBounds)
        let jobLatency = Histogram(bounds: Histogram.secondsBounds)
    }

    /// The process's: plugin calls are measured wherever they run, and a run scrapes them.
    static let shared = HostMetrics()

    private let entries = Mutex<[String: Entry]>([:])
    /// The entry that serves a key, in the configuration running now (set by the run).
    /// (In a class: see ``Callback``.)
    private let entryName = Mutex(Resolver { _ in Manifest.defaultKey })

    private final class Resolver: Sendable {
        let resolve: @Sendable (String) -> String
        init(_ resolve: @escaping @Sendable (String) -> String) { self.resolve = resolve }
    }

    /// Says which entry serves a key from now on.
    func resolveEntries(with entryName: @escaping @Sendable (String) -> String) {
        let resolver = Resolver(entryName)
        self.entryName.withLock { $0 = resolver }
    }

    func entry(named name: String) -> Entry {
        entries.withLock { entries in
            if let entry = entries[name] { return entry }
            let entry = Entry()
            entries[name] = entry
            return entry
        }
    }

    func entry(forKey key: String) -> Entry { entry(named: entryName(forKey: key)) }

    func entryName(forKey key: String) -> String { entryName.withLock { $0 }.resolve(key) }

    /// Every entry's histograms so far, by name.
    var all: [String: Entry] { entries.withLock { $0 } }

    /// Runs the plugin call for `batch` and observes how long it took (from the call's start:
    /// time waiting for a worker thread or a worker process's start is not the plugin's).
    func timeCall<Outcomes>(of batch: Batch<JobBytes>, _ call: () -> Outcomes) -> Outcomes {
        let started = Syscall.monotonicNanoseconds()
        let outcomes = call()
        entry(forKey: batch.key).batchDuration.observe(Double(Syscall.monotonicNanoseconds() - started) / 1e9)
        return outcomes
    }

    /// A batch's results are out: each job's latency, from its line's read to now.
    func answered(_ results: [JobResult<JobBytes, JobBytes>]) {
        guard !results.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        // One batch's results: one key, so one entry. Read in place (see encodedLines).
        entry(forKey: results[0].key).jobLatency.observe(results.indices.lazy.map { max(0, now - results[$0].submittedAt.timeIntervalSince1970) })
    }
}
