import Batchman
import FoundationEssentials

/// Writes result lines: `{"key","id","status","result","errorReason","errorMessage","batchId",
/// "attempts","submittedAt","completedAt"}`, always valid JSON whatever bytes a plugin emitted.
/// Hand-written rather than Codable: it runs once per job on the hot path.
enum ResultEncoder {
    /// What formatting work one line leaves for the next: the results of a batch share the
    /// seconds of their times.
    struct Timestamps {
        var submitted = ISO8601Timestamp.Cache()
        var completed = ISO8601Timestamp.Cache()
    }

    static func append(_ result: borrowing JobResult<JobBytes, JobBytes>, to output: inout [UInt8]) {
        var timestamps = Timestamps()
        append(result, timestamps: &timestamps, to: &output)
    }

    /// Appends `result`'s line; `replayed` (a job from the spool, accepted by an earlier run)
    /// adds `"replayed":true`.
    static func append(_ result: borrowing JobResult<JobBytes, JobBytes>, timestamps: inout Timestamps, replayed: Bool = false,
                       to output: inout [UInt8]) {
        appendRaw("{\"key\":", to: &output)
        JSONStringEscaper.append(result.key, to: &output)
        appendRaw(",\"id\":", to: &output)
        JSONStringEscaper.append(result.id, to: &output)
        appendRaw(result.status == .completed ? ",\"status\":\"completed\",\"result\":" : ",\"status\":\"failed\",\"result\":", to: &output)
        if let bytes = result.result {
            appendResult(bytes, to: &output)
        } else {
            appendRaw("null", to: &output)
        }
        appendRaw(",\"errorReason\":", to: &output)
        appendOptionalString(result.errorReason?.rawValue, to: &output)
        appendRaw(",\"errorMessage\":", to: &output)
        appendOptionalString(result.errorMessage, to: &output)
        appendRaw(",\"batchId\":", to: &output)
        if let batchId = result.batchId { appendInteger(batchId, to: &output) } else { appendRaw("null", to: &output) }
        appendRaw(",\"attempts\":", to: &output)
        appendInteger(UInt64(max(0, result.attempts)), to: &output)
        appendRaw(",\"submittedAt\":", to: &output)
        ISO8601Timestamp.append(result.submittedAt, cache: &timestamps.submitted, to: &output)
        appendRaw(",\"completedAt\":", to: &output)
        ISO8601Timestamp.append(result.completedAt, cache: &timestamps.completed, to: &output)
        appendRaw(replayed ? ",\"replayed\":true}\n" : "}\n", to: &output)
    }

    /// The result line for an input line that is not a job; `line` is its 1-based number.
    static func appendInvalidInput(
        line: Int, key: String?, id: String?, message: String, at time: Date, replayed: Bool = false, to output: inout [UInt8]
    ) {
        appendRaw("{\"key\":", to: &output)
        appendOptionalString(key, to: &output)
        appendRaw(",\"id\":", to: &output)
        appendOptionalString(id, to: &output)
        appendRaw(",\"status\":\"failed\",\"result\":null,\"errorReason\":\"invalid_input\",\"errorMessage\":", to: &output)
        JSONStringEscaper.append("line \(line): \(message)", to: &output)
        appendRaw(",\"batchId\":null,\"attempts\":0,\"submittedAt\":", to: &output)
        ISO8601Timestamp.append(time, to: &output)
        appendRaw(",\"completedAt\":", to: &output)
        ISO8601Timestamp.append(time, to: &output)
        appendRaw(",\"line\":", to: &output)
        appendInteger(UInt64(line), to: &output)
        appendRaw(replayed ? ",\"replayed\":true}\n" : "}\n", to: &output)
    }

    /// Valid JSON is embedded as is; anything else becomes a JSON string.
    private static func appendResult(_ bytes: JobBytes, to output: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { buffer in
            if !buffer.isEmpty, JSONScanner.isValidJSON(buffer) {
                output.append(contentsOf: buffer)
            } else {
                JSONStringEscaper.append(buffer, to: &output)
            }
        }
    }

    private static func appendOptionalString(_ string: String?, to output: inout [UInt8]) {
        guard let string else { return appendRaw("null", to: &output) }
        JSONStringEscaper.append(string, to: &output)
    }

    static func appendRaw(_ text: StaticString, to output: inout [UInt8]) {
        text.withUTF8Buffer { output.append(contentsOf: $0) }
    }

    static func appendInteger(_ value: UInt64, to output: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var remaining = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[19 - count] = UInt8(ascii: "0") + UInt8(remaining % 10)
                remaining /= 10
                count += 1
            } while remaining > 0
            output.append(contentsOf: buffer[(20 - count)...])
        }
    }
}
