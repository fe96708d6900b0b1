/// What the NATS parser promises whatever bytes come: the same operations however the bytes
/// are cut into reads, and never more held than one control line and one message. The fuzz
/// target (Fuzz/NATSFuzzer.swift) and the replay of its corpus (NATSFuzzRegressionTests) both
/// run this. Returns what was broken, or nil.
package enum NATSParserChecks {
    package static func check(_ input: UnsafeBufferPointer<UInt8>) -> String? {
        let bytes = Array(input)
        // A small limit, so that the fuzzer reaches "too large" without megabytes of input.
        let whole = parse([bytes], limit: 512)
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % bytes.count
        let pieces = parse([Array(bytes[..<cut]), Array(bytes[cut...])], limit: 512)
        if whole.ops != pieces.ops || whole.error != pieces.error {
            return "cut at byte \(cut), the bytes parse otherwise: \(pieces.ops.count) operations (\(pieces.error ?? "no error")) "
                + "against \(whole.ops.count) (\(whole.error ?? "no error"))"
        }
        if whole.error == nil, whole.buffered > NATSParser.maxControlLineBytes + max(512, whole.limit) + 2 {
            return "\(whole.buffered) bytes held without making an operation"
        }
        for case .message(let message) in whole.ops where message.payload.count > whole.limit {
            return "a message of \(message.payload.count) bytes passed a limit of \(whole.limit)"
        }
        return nil
    }

    private static func parse(_ reads: [[UInt8]], limit: Int) -> (ops: [NATSServerOp], error: String?, buffered: Int, limit: Int) {
        var parser = NATSParser(maxPayloadBytes: limit)
        var ops: [NATSServerOp] = []
        do throws(NATSProtocolError) {
            for read in reads { try parser.feed(read) { ops.append($0) } }
        } catch {
            return (ops, error.description, parser.bufferedBytes, parser.maxPayloadBytes)
        }
        return (ops, nil, parser.bufferedBytes, parser.maxPayloadBytes)
    }
}
