import Batchman
import CBatchmanPlugin
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

    /// Checks bytes a client of `--http` could send as a request head: the parser must end with
    /// a request, more to read or a refusal, and a request must say only what the bytes said.
    package static func httpRequest(_ input: UnsafeBufferPointer<UInt8>) -> String? {
        let bytes = ArraySlice(input)
        switch HTTPRequestHead.parse(bytes) {
        case .request(let head):
            if head.method.isEmpty || !head.path.hasPrefix("/") { return "a request without a method or an absolute path" }
            if head.path.contains("?") { return "a path that kept its query" }
            if !bytes.starts(with: Array(head.method.utf8) + [UInt8(ascii: " ")]) { return "a method that is not the line's" }
        case .incomplete:
            if bytes.count > HTTPRequestHead.maxBytes { return "more than the bound still read as incomplete" }
        case .malformed:
            break
        }
        return nil
    }

    /// Checks bytes a worker process could send: the first byte picks what they are read as. Even:
    /// a frame's body; odd: an outcome log for a batch of `byte / 2 + 1` jobs whose
    /// `maxResultBytes` is the next byte times 16. Returns what was broken, or nil.
    package static func workerBytes(_ input: UnsafeBufferPointer<UInt8>) -> String? {
        guard let selector = input.first else { return nil }
        let rest = UnsafeBufferPointer(rebasing: input.dropFirst())
        if selector % 2 == 0 {
            guard let frame = WorkerFrame.decode(ArraySlice(rest)) else { return nil }
            if WorkerFrame.decode(frame.encoded[4...]) != frame { return "a frame that does not decode to itself once encoded" }
            return nil
        }
        let count = Int(selector / 2) + 1
        let maxResultBytes = Int(rest.first ?? 0) * 16
        let log = UnsafeBufferPointer(rebasing: rest.dropFirst())
        guard case .records(let records, let bytes) = OutcomeLogParser.parse(
            UnsafeRawPointer(log.baseAddress ?? UnsafePointer(bitPattern: 8)!), length: log.count, count: count, maxResultBytes: maxResultBytes)
        else { return nil }
        if records.count > count { return "more records than jobs" }
        if Set(records.map(\.index)).count != records.count { return "two records for one job" }
        if records.contains(where: { $0.index < 0 || $0.index >= count }) { return "a record for a job outside the batch" }
        if records.contains(where: { $0.bytes.lowerBound < 0 || $0.bytes.upperBound > bytes.count }) { return "a record's bytes outside the buffer" }
        if bytes.count > maxResultBytes + count * OutcomeLogParser.messageAllowance { return "more bytes than the batch may hold" }
        for record in records {
            guard let detail = record.detail else { continue }
            if !detail.reason.isEmpty, !FailureReason.isValidToken(Array(detail.reason.utf8)) || record.status == BM_OK {
                return "a reason emit_detailed refuses"
            }
            if detail.retryAfterMilliseconds > OutcomeDetail.maxRetryAfterMilliseconds || (detail.retryAfterMilliseconds > 0 && record.status != BM_RETRY) {
                return "a retry-after emit_detailed refuses"
            }
        }
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
