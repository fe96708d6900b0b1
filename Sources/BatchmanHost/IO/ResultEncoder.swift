import Batchman
import FoundationEssentials

/// Writes result lines: `{"key","id","status","result","errorReason","errorMessage","batchId",
/// "attempts","submittedAt","completedAt"}`, always valid JSON whatever bytes a plugin emitted.
/// Hand-written rather than Codable: it runs once per job on the hot path, into a buffer sized
/// once for a whole batch (see ``ByteWriter``).
enum ResultEncoder {
    /// What formatting work one line leaves for the next: the results of a batch share the
    /// seconds of their times.
    struct Timestamps {
        var submitted = ISO8601Timestamp.Cache()
        var completed = ISO8601Timestamp.Cache()
    }

    /// The most bytes a line takes besides its strings and its result: every fixed piece at its
    /// longest (a failed status, two 20-digit numbers, two timestamps, `"replayed":true`), with
    /// room to spare.
    static let fixedBound = 320

    /// The lines of `results`, in order: their results checked once, one buffer for them all.
    static func lines(of results: [JobResult<JobBytes, JobBytes>], replayed: Bool) -> [UInt8] {
        var isJSON = [Bool](repeating: false, count: results.count)
        var bound = 0
        for index in results.indices {
            isJSON[index] = results[index].result?.withUnsafeBufferPointer { !$0.isEmpty && JSONScanner.isValidJSON($0) } ?? false
            bound += Self.bound(results, at: index, resultIsJSON: isJSON[index])
        }
        var lines: [UInt8] = []
        ByteWriter.append(to: &lines, bound: bound) { write(results, resultIsJSON: isJSON, replayed: replayed, to: &$0) }
        return lines
    }

    /// Writes every result's line. The loop is here rather than in a closure: an element read
    /// through an array a closure captured was copied whole (through its value witnesses, with
    /// a retain of each of its buffers).
    private static func write(
        _ results: [JobResult<JobBytes, JobBytes>], resultIsJSON: [Bool], replayed: Bool, to output: inout ByteWriter
    ) {
        var timestamps = Timestamps()
        for index in results.indices {
            write(results, at: index, resultIsJSON: resultIsJSON[index], timestamps: &timestamps, replayed: replayed, to: &output)
        }
    }

    static func append(_ result: borrowing JobResult<JobBytes, JobBytes>, to output: inout [UInt8]) {
        var timestamps = Timestamps()
        append(result, timestamps: &timestamps, to: &output)
    }

    /// Appends `result`'s line; `replayed` (a job from the spool, accepted by an earlier run)
    /// adds `"replayed":true`.
    static func append(_ result: borrowing JobResult<JobBytes, JobBytes>, timestamps: inout Timestamps, replayed: Bool = false,
                       to output: inout [UInt8]) {
        let results = [copy result]
        let resultIsJSON = result.result?.withUnsafeBufferPointer { !$0.isEmpty && JSONScanner.isValidJSON($0) } ?? false
        ByteWriter.append(to: &output, bound: bound(results, at: 0, resultIsJSON: resultIsJSON)) {
            write(results, at: 0, resultIsJSON: resultIsJSON, timestamps: &timestamps, replayed: replayed, to: &$0)
        }
    }

    /// The most bytes the line of `results[index]` takes.
    static func bound(_ results: [JobResult<JobBytes, JobBytes>], at index: Int, resultIsJSON: Bool) -> Int {
        let resultBytes = results[index].result?.count ?? 0
        return fixedBound + JSONStringEscaper.bound(ofLength: results[index].key.utf8.count)
            + JSONStringEscaper.bound(ofLength: results[index].id.utf8.count)
            + (resultIsJSON ? resultBytes : JSONStringEscaper.bound(ofLength: resultBytes))
            + JSONStringEscaper.bound(ofLength: results[index].errorReason?.rawValue.utf8.count ?? 0)
            + JSONStringEscaper.bound(ofLength: results[index].errorMessage?.utf8.count ?? 0)
    }

    /// Writes the line of `results[index]`; its result bytes are embedded as they are if
    /// `resultIsJSON`, else as a JSON string. Its fields are read through the array: a result
    /// taken out whole, even as a `borrowing` argument, was copied through its value witnesses.
    static func write(
        _ results: [JobResult<JobBytes, JobBytes>], at index: Int, resultIsJSON: Bool, timestamps: inout Timestamps, replayed: Bool,
        to output: inout ByteWriter
    ) {
        output.write("{\"key\":")
        JSONStringEscaper.write(results[index].key, to: &output)
        output.write(",\"id\":")
        JSONStringEscaper.write(results[index].id, to: &output)
        output.write(results[index].status == .completed ? ",\"status\":\"completed\",\"result\":" : ",\"status\":\"failed\",\"result\":")
        // Read in place, not bound to a local (which would retain the plugin's result buffer).
        let wroteResult: Void? = results[index].result?.withUnsafeBufferPointer { resultIsJSON ? output.write($0) : JSONStringEscaper.write($0, to: &output) }
        if wroteResult == nil { output.write("null") }
        if results[index].errorReason == nil, results[index].errorMessage == nil {
            output.write(",\"errorReason\":null,\"errorMessage\":null,\"batchId\":")
        } else {
            output.write(",\"errorReason\":")
            writeOptional(results[index].errorReason?.rawValue, to: &output)
            output.write(",\"errorMessage\":")
            writeOptional(results[index].errorMessage, to: &output)
            output.write(",\"batchId\":")
        }
        if let batchId = results[index].batchId { output.write(decimal: batchId) } else { output.write("null") }
        output.write(",\"attempts\":")
        output.write(decimal: UInt64(max(0, results[index].attempts)))
        output.write(",\"submittedAt\":")
        ISO8601Timestamp.write(secondsSince1970: results[index].submittedAt.timeIntervalSince1970, cache: &timestamps.submitted, to: &output)
        output.write(",\"completedAt\":")
        ISO8601Timestamp.write(secondsSince1970: results[index].completedAt.timeIntervalSince1970, cache: &timestamps.completed, to: &output)
        output.write(replayed ? ",\"replayed\":true}\n" : "}\n")
    }

    /// The result line for an input line that is not a job; `line` is its 1-based number.
    static func appendInvalidInput(
        line: Int, key: String?, id: String?, message: String, at time: Date, replayed: Bool = false, to output: inout [UInt8]
    ) {
        let text = "line \(line): \(message)"
        let bound = fixedBound + JSONStringEscaper.bound(ofLength: key?.utf8.count ?? 0) + JSONStringEscaper.bound(ofLength: id?.utf8.count ?? 0)
            + JSONStringEscaper.bound(ofLength: text.utf8.count)
        var cache = ISO8601Timestamp.Cache()
        ByteWriter.append(to: &output, bound: bound) { output in
            output.write("{\"key\":")
            writeOptional(key, to: &output)
            output.write(",\"id\":")
            writeOptional(id, to: &output)
            output.write(",\"status\":\"failed\",\"result\":null,\"errorReason\":\"invalid_input\",\"errorMessage\":")
            JSONStringEscaper.write(text, to: &output)
            output.write(",\"batchId\":null,\"attempts\":0,\"submittedAt\":")
            ISO8601Timestamp.write(secondsSince1970: time.timeIntervalSince1970, cache: &cache, to: &output)
            output.write(",\"completedAt\":")
            ISO8601Timestamp.write(secondsSince1970: time.timeIntervalSince1970, cache: &cache, to: &output)
            output.write(",\"line\":")
            output.write(decimal: UInt64(line))
            output.write(replayed ? ",\"replayed\":true}\n" : "}\n")
        }
    }

    private static func writeOptional(_ string: String?, to output: inout ByteWriter) {
        guard let string else { return output.write("null") }
        JSONStringEscaper.write(string, to: &output)
    }
}
