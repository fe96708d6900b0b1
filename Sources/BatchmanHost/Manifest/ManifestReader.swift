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
                problem(Self.path(path, member.key), "unknown field; expected one of \(allowed.joined(separator: ", "))")
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

    func milliseconds(_ value: JSONValue, at path: String) -> Duration? {
        guard case .number(let text) = value, let milliseconds = Double(text), milliseconds > 0, milliseconds.isFinite else {
            problem(path, "expected a number of milliseconds greater than 0, got \(value.kindDescription)")
            return nil
        }
        return .nanoseconds(Int64((milliseconds * 1_000_000).rounded()))
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

    /// `base.name`, or `base["name"]` when the name would not read as a plain path segment.
    static func path(_ base: String, _ name: String) -> String {
        let plain = !name.isEmpty && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        let segment = plain ? name : "[\(JSONValue.string(name).jsonText)]"
        if base.isEmpty { return segment }
        return plain ? "\(base).\(segment)" : "\(base)\(segment)"
    }
}
