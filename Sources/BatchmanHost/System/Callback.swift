/// A closure to keep in a `Mutex`. A function type stored as a `Mutex`'s value directly comes
/// back from `withLock { $0 }` wrapped in one more reabstraction thunk each time (Swift 6.3),
/// so every call through it is slower than the last (seen: a host slowing to a crawl after a
/// few thousand batches); inside a struct it does not.
struct Callback: Sendable {
    let call: @Sendable () -> Void
    init(_ call: @escaping @Sendable () -> Void) { self.call = call }
}
