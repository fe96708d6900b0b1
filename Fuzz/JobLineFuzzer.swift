// libFuzzer target for the NDJSON line scanner (JobLine.parse and JSONScanner), built by
// Fuzz/run together with the host's sources. Besides not crashing, every parse must keep its
// promises: a job's payload is a slice of the line that is itself valid JSON, and a result
// line written for any plugin bytes is valid JSON.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJobLine(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = UnsafeBufferPointer(start: data, count: size)
    switch JobLine.parse(line) {
    case .job(let key, let id, let payload):
        precondition(!key.isEmpty && !id.isEmpty, "a job has a key and an id")
        precondition(payload.lowerBound >= 0 && payload.upperBound <= size, "the payload lies inside the line")
        precondition(JSONScanner.isValidJSON(UnsafeBufferPointer(rebasing: line[payload])), "the payload is valid JSON")
    case .blank, .invalid:
        break
    }
    var encoded: [UInt8] = []
    JSONStringEscaper.append(line, to: &encoded)
    precondition(encoded.withUnsafeBufferPointer { JSONScanner.isValidJSON($0) }, "any bytes escape to a valid JSON string")
    return 0
}
