/// Reads typed values out of a manifest's JSON, noting a problem (and returning nil) for
/// anything of the wrong type, so one pass reports every mistake.
final class ManifestReader {
    private(set) var problems: [ManifestError.Problem] = []

    func problem(_ path: String, _ message: String) {
        problems.append(ManifestError.Problem(path: path, message: message))
    }

    /// The members of an object, after checking every key is one of `allowed`.
    func object(_ value: JSONValue, at path: String, allowed: [String]? = nil) -> [JSONValue.Member]? {
        guard case .object(let members) = value else {
            problem(path, "expected an object, got \(value.kindDescription)")
            return nil
        }
        if let allowed {
            for member in members where !allowed.contains(member.key) {
                if let suggestion = Self.closest(to: member.key, in: allowed) {
                    problem(Self.path(path, member.key), "unknown field; did you mean \"\(suggestion)\"?")
                } else {
                    problem(Self.path(path, member.key), "unknown field; expected one of \(allowed.joined(separator: ", "))")
                }
            }
        }
        var seen = Set<String>()
        for member in members where !seen.insert(member.key).inserted {
            problem(Self.path(path, member.key), "given twice")
        }
        return members
    }

    func string(_ value: JSONValue, at path: String) -> String? {
        guard case .string(let text) = value, !text.isEmpty else {
            problem(path, "expected a non-empty string, got \(value.kindDescription)")
            return nil
        }
        return text
    }

    func boolean(_ value: JSONValue, at path: String) -> Bool? {
        guard case .bool(let flag) = value else {
            problem(path, "expected true or false, got \(value.kindDescription)")
            return nil
        }
        return flag
    }

    func milliseconds(_ value: JSONValue, at path: String, allowZero: Bool = false) -> Duration? {
        guard case .number(let text) = value, let milliseconds = Double(text), milliseconds.isFinite,
              milliseconds > 0 || (allowZero && milliseconds == 0), milliseconds < 1e12 else {
            problem(path, "expected a number of milliseconds \(allowZero ? "of at least 0" : "greater than 0"), got \(value.kindDescription)")
            return nil
        }
        let nanoseconds = Int64((milliseconds * 1_000_000).rounded())
        guard nanoseconds > 0 || milliseconds == 0 else {
            problem(path, "\(text) milliseconds is less than a nanosecond, which rounds to 0; use at least 0.000001")
            return nil
        }
        return .nanoseconds(nanoseconds)
    }

    func number(_ value: JSONValue, at path: String, atLeast minimum: Int) -> Double? {
        guard case .number(let text) = value, let number = Double(text), number.isFinite, number >= Double(minimum) else {
            problem(path, "expected a number of at least \(minimum), got \(value.kindDescription)")
            return nil
        }
        return number
    }

    func choice<Choice: RawRepresentable & CaseIterable>(_ value: JSONValue, at path: String, of type: Choice.Type) -> Choice? where Choice.RawValue == String {
        guard case .string(let text) = value, let choice = Choice(rawValue: text) else {
            let names = Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: " or ")
            problem(path, "expected \(names), got \(value.kindDescription)")
            return nil
        }
        return choice
    }

    func positiveInteger(_ value: JSONValue, at path: String) -> Int? {
        guard case .number(let text) = value, let integer = Int(text), integer > 0 else {
            problem(path, "expected a whole number of at least 1, got \(value.kindDescription)")
            return nil
        }
        return integer
    }

    func settings(_ members: [JSONValue.Member], at path: String) -> KeySettings {
        var settings = KeySettings()
        for member in members {
            guard let field = KeySettings.fields.first(where: { $0.name == member.key }) else { continue }
            field.read(&settings, self, member.value, Self.path(path, member.key))
        }
        return settings
    }

    /// The allowed name a typo most likely meant: at most two edits away, ignoring case.
    static func closest(to name: String, in allowed: [String]) -> String? {
        let typed = Array(name.lowercased())
        let scored = allowed.map { candidate -> (String, Int) in
            let target = Array(candidate.lowercased())
            var previous = Array(0...target.count)
            for (row, character) in typed.enumerated() {
                var current = [row + 1]
                for (column, other) in target.enumerated() {
                    current.append(min(previous[column + 1] + 1, current[column] + 1, previous[column] + (character == other ? 0 : 1)))
                }
                previous = current
            }
            return (candidate, previous[target.count])
        }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
        return best.0
    }

    /// `base.name`, or `base["name"]` when the name would not read as a plain path segment.
    static func path(_ base: String, _ name: String) -> String {
        let plain = !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        let segment = plain ? name : "[\(JSONValue.string(name).jsonText)]"
        if base.isEmpty { return segment }
        return plain ? "\(base).\(segment)" : "\(base)\(segment)"
    }
}
