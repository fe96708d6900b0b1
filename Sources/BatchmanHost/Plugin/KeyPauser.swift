import Synchronization

/// Where a plugin's `bm_host.pause` goes (ABI 1.1): the core that batches for the plugin's
/// instances. Instances are made before that core exists (a generation loads its plugins
/// first), so it is connected once the core is made; until then, and once it is gone, a pause
/// finds no key (-1).
final class KeyPauser: Sendable {
    /// Pauses a key's new batches; false if the core has no such key.
    struct Target: Sendable {
        let pause: @Sendable (_ key: String, _ duration: Duration) -> Bool
    }

    /// The longest pause kept: a plugin cannot stop a key for days.
    static let maxPause = Duration.seconds(3600)

    // A struct around the function: see `Callback`.
    private let target = Mutex<Target?>(nil)
    /// The manifest entry a key is batched under; nil where there is no manifest (a worker).
    private let entryOfKey: (@Sendable (String) -> String)?

    /// - Parameter entryOfKey: which manifest entry serves a key: a plugin may pause only the
    ///   keys of its own entry, never another plugin's.
    init(entryOfKey: (@Sendable (String) -> String)? = nil) {
        self.entryOfKey = entryOfKey
    }

    /// Connects the core; `pause` should hold it weakly (the core holds the instances).
    func connect(_ pause: @escaping @Sendable (_ key: String, _ duration: Duration) -> Bool) {
        target.withLock { $0 = Target(pause: pause) }
    }

    /// Pauses `key` for `milliseconds` (at most ``maxPause``; 0 resumes it), asked by an
    /// instance of `entry`; false (the plugin gets -1) if the key is another entry's or unknown.
    func pause(key: String, milliseconds: UInt64, from entry: String? = nil) -> Bool {
        if let entry, let entryOfKey, entryOfKey(key) != entry { return false }
        guard let target = target.withLock({ $0 }) else { return false }
        let duration = min(Duration.milliseconds(Int64(min(milliseconds, UInt64(Int64.max)))), Self.maxPause)
        return target.pause(key, duration)
    }
}
