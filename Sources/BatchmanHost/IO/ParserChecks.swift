import FoundationEssentials

/// What the host's parsers promise for any input, whatever the bytes: the fuzz targets
/// (`Fuzz/`) and the tests that replay their inputs check the same things.
package enum ParserChecks {
    /// Checks one input line; returns what was broken, or nil.
    package static func jobLine(_ line: UnsafeBufferPointer<UInt8>) -> String? {
        switch JobLine.parse(line) {
        case .job(let key, let id, let payload):
            if key.isEmpty || id.isEmpty { return "a job without a key or an id" }
            if payload.lowerBound < 0 || payload.upperBound > line.count { return "a payload outside the line" }
            if !JSONScanner.isValidJSON(UnsafeBufferPointer(rebasing: line[payload])) { return "a payload that is not valid JSON" }
        case .blank, .invalid:
            break
        }
        var encoded: [UInt8] = []
        JSONStringEscaper.append(line, to: &encoded)
        if !encoded.withUnsafeBufferPointer({ JSONScanner.isValidJSON($0) }) { return "bytes escaped to an invalid JSON string" }
        return nil
    }

    /// Checks one manifest text; returns what was broken, or nil.
    package static func manifest(_ text: Data) -> String? {
        do {
            _ = try Manifest.parse(text, path: "fuzz.json").batchmanConfig()
        } catch {
            if error.problems.isEmpty { return "a refused manifest without a problem" }
            if !error.problems.allSatisfy({ !$0.path.isEmpty && !$0.message.isEmpty }) { return "a problem without a path or a message" }
        }
        return nil
    }
}
