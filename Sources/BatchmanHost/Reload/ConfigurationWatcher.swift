import Batchman
import Glibc
import Synchronization

/// `--watch`: looks at the manifest and every plugin file of the running configuration once a
/// second, and asks for a reload when one has changed and then stayed unchanged for a whole
/// interval, so a plugin still being copied in is never loaded half-written.
final class ConfigurationWatcher: Sendable {
    typealias Signature = [String: LibraryImages.FileIdentity?]

    private let isStopped = Atomic<Bool>(false)

    /// Starts watching: `files` gives the files of the running configuration, `reload` is called
    /// with the reason.
    init(interval: Duration = .seconds(1), logger: BatchmanLogger, files: @escaping @Sendable () -> [String],
         reload: @escaping @Sendable (String) -> Void) {
        // Taken here, not on the thread: a change made once the host says it runs must be seen,
        // however late the thread starts (seen under AddressSanitizer: a file changed before the
        // thread's first look was taken for the loaded one).
        let initial = Self.signature(of: files())
        DedicatedThread.start(name: "batchman-watch") { [self] in
            var loaded = initial
            var seen = loaded
            while !isStopped.load(ordering: .relaxed) {
                usleep(UInt32(clamping: interval.nanosecondsClamped / 1000))
                if isStopped.load(ordering: .relaxed) { return }
                let now = Self.signature(of: Array(loaded.keys) + files())
                guard now != loaded else {
                    seen = now
                    continue
                }
                let changed = now.keys.filter { now[$0] != loaded[$0] }.sorted()
                let incomplete = changed.compactMap { file in ELFSize.truncation(ofFileAt: file).map { "\(file) \($0)" } }
                if now == seen, !incomplete.isEmpty {
                    // Unchanged, but not whole yet (a slow copy): loading it would fail, or worse.
                    logger.log(.info, "--watch: waiting: \(incomplete.joined(separator: "; "))")
                } else if now == seen {
                    // Unchanged for a whole interval: whole, as far as anyone can tell.
                    loaded = now
                    reload("--watch: \(changed.joined(separator: ", ")) changed")
                    loaded = Self.signature(of: files())
                    seen = loaded
                } else {
                    logger.log(.info, "--watch: \(changed.joined(separator: ", ")) changed; reloading once it has not changed for \(interval)")
                    seen = now
                }
            }
        }
    }

    func stop() {
        isStopped.store(true, ordering: .relaxed)
    }

    static func signature(of files: [String]) -> Signature {
        Dictionary(files.map { ($0, LibraryImages.FileIdentity(path: $0)) }, uniquingKeysWith: { first, _ in first })
    }
}
