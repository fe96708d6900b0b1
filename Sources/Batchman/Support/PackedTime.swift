/// A `Duration?` in 8 bytes instead of 24 (a `Duration` is two words, and its optional is
/// padded to three): whole nanoseconds, which is all a clock gives, with `Int64.min` for none.
/// A key's flight engine keeps three times, and an idle key's bytes are what W5 and W7 measure.
@propertyWrapper
struct PackedTime: Equatable, Sendable {
    private var nanoseconds = Int64.min

    init() {}

    var wrappedValue: Duration? {
        get { nanoseconds == .min ? nil : .nanoseconds(nanoseconds) }
        set { nanoseconds = newValue.map { max(Int64.min + 1, $0.nanosecondsClamped) } ?? .min }
    }
}
