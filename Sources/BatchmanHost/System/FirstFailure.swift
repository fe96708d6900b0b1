import Synchronization

/// The first error a long-running part met, kept for whoever reports how the run ended.
final class FirstFailure: Sendable {
    private let code = Atomic<Int32>(0)

    /// Keeps `error` unless an earlier one was kept.
    func record(_ error: Errno) {
        _ = code.compareExchange(expected: 0, desired: error.rawValue, ordering: .relaxed)
    }

    var error: Errno? {
        let value = code.load(ordering: .relaxed)
        return value == 0 ? nil : Errno(rawValue: value)
    }
}
