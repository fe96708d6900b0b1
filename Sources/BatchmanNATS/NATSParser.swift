/// The server side of the NATS protocol, parsed from bytes as they arrive, in pieces of any
/// size: `INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK` and `-ERR`.
///
/// Whatever a server (or something posing as one) sends, the parser either yields operations or
/// throws ``NATSProtocolError``; it never holds more than one control line
/// (``maxControlLineBytes``) plus one message (`maxPayloadBytes`) of unparsed bytes.
public struct NATSParser: Sendable {
    /// A control line longer than this is an error (the server's own limit is 4096).
    public static let maxControlLineBytes = 4096

    /// The largest message accepted, headers included: the server's `max_payload` and then
    /// some (INFO raises it to what the server says).
    public var maxPayloadBytes: Int

    private var buffer: [UInt8] = []
    private var start = 0
    /// A message's control line was read; its bytes (and the CRLF after them) are awaited.
    private var awaiting: Pending?

    private struct Pending: Sendable {
        var subject: String
        var sid: UInt64
        var replyTo: String?
        var headerBytes: Int
        var totalBytes: Int
    }

    public init(maxPayloadBytes: Int = 8 << 20) {
        self.maxPayloadBytes = maxPayloadBytes
    }

    /// Bytes held that do not yet make a whole operation.
    public var bufferedBytes: Int { buffer.count - start }

    /// Parses `bytes` after what came before, handing each whole operation to `handle`.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ handle: (NATSServerOp) -> Void) throws(NATSProtocolError) {
        buffer.append(contentsOf: bytes)
        defer {
            // What is parsed goes; a partial operation moves to the front.
            if start == buffer.count {
                buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
                start = 0
            } else if start > 0 {
                buffer.removeSubrange(0..<start)
                start = 0
            }
        }
        while true {
            if let pending = awaiting {
                guard buffer.count - start >= pending.totalBytes + 2 else { return }
                let body = start..<(start + pending.totalBytes)
                guard buffer[body.upperBound] == 13, buffer[body.upperBound + 1] == 10 else {
                    throw NATSProtocolError("a message on \(pending.subject) is not followed by CRLF after its \(pending.totalBytes) bytes")
                }
                var headers: NATSHeaders?
                if pending.headerBytes > 0 {
                    guard let parsed = NATSHeaders.parse(buffer[start..<(start + pending.headerBytes)]) else {
                        throw NATSProtocolError("a message on \(pending.subject) has headers that are not NATS/1.0 headers")
                    }
                    headers = parsed
                }
                let payload = Array(buffer[(start + pending.headerBytes)..<body.upperBound])
                start = body.upperBound + 2
                awaiting = nil
                handle(.message(NATSMessage(subject: pending.subject, sid: pending.sid, replyTo: pending.replyTo, headers: headers, payload: payload)))
                continue
            }
            guard let end = lineEnd() else {
                if buffer.count - start > Self.maxControlLineBytes {
                    throw NATSProtocolError("a control line is longer than \(Self.maxControlLineBytes) bytes")
                }
                return
            }
            guard end - start <= Self.maxControlLineBytes else {
                throw NATSProtocolError("a control line is longer than \(Self.maxControlLineBytes) bytes")
            }
            let line = buffer[start..<end]
            start = end + 2
            if let op = try control(line) { handle(op) }
        }
    }

    /// ``feed(_:_:)`` for bytes in an array.
    public mutating func feed(_ bytes: [UInt8], _ handle: (NATSServerOp) -> Void) throws(NATSProtocolError) {
        var failure: NATSProtocolError?
        bytes.withUnsafeBytes { raw in
            do throws(NATSProtocolError) {
                try feed(raw, handle)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// The index of the next CR of a CRLF from `start`, nil if none is buffered.
    private func lineEnd() -> Int? {
        var index = start
        while index + 1 < buffer.count {
            if buffer[index] == 13, buffer[index + 1] == 10 { return index }
            index += 1
        }
        return nil
    }

    /// One control line: an operation, or nil for a message whose bytes follow.
    private mutating func control(_ line: ArraySlice<UInt8>) throws(NATSProtocolError) -> NATSServerOp? {
        let words = line.split(whereSeparator: { $0 == 32 || $0 == 9 })
        guard let verb = words.first else { throw NATSProtocolError("an empty control line") }
        switch String(decoding: verb, as: UTF8.self).uppercased() {
        case "PING": return .ping
        case "PONG": return .pong
        case "+OK": return .ok
        case "-ERR":
            let text = String(decoding: line.dropFirst(4), as: UTF8.self).trimmingSpaces
            return .error(text.count >= 2 && text.hasPrefix("'") && text.hasSuffix("'") ? String(text.dropFirst().dropLast()) : text)
        case "INFO":
            guard let brace = line.firstIndex(of: UInt8(ascii: "{")) else { throw NATSProtocolError("INFO without a JSON object") }
            let json = Array(line[brace...])
            if let maximum = Self.maxPayload(inInfo: json) { maxPayloadBytes = max(maxPayloadBytes, maximum + 64 * 1024) }
            return .info(json)
        case "MSG":
            // MSG <subject> <sid> [reply-to] <#bytes>
            guard words.count == 4 || words.count == 5 else { throw NATSProtocolError("MSG with \(words.count - 1) fields, not 3 or 4") }
            let size = try Self.number(words[words.count - 1], "MSG's size")
            try expectMessage(subject: words[1], sid: words[2], reply: words.count == 5 ? words[3] : nil, headerBytes: 0, totalBytes: size)
            return nil
        case "HMSG":
            // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
            guard words.count == 5 || words.count == 6 else { throw NATSProtocolError("HMSG with \(words.count - 1) fields, not 4 or 5") }
            let headerBytes = try Self.number(words[words.count - 2], "HMSG's header size")
            let total = try Self.number(words[words.count - 1], "HMSG's size")
            guard headerBytes <= total else { throw NATSProtocolError("HMSG's headers (\(headerBytes) bytes) are longer than the message (\(total))") }
            try expectMessage(subject: words[1], sid: words[2], reply: words.count == 6 ? words[3] : nil, headerBytes: headerBytes, totalBytes: total)
            return nil
        default:
            throw NATSProtocolError("unknown operation \(String(decoding: verb.prefix(16), as: UTF8.self).debugDescription)")
        }
    }

    private mutating func expectMessage(subject: ArraySlice<UInt8>, sid: ArraySlice<UInt8>, reply: ArraySlice<UInt8>?, headerBytes: Int,
                                totalBytes: Int) throws(NATSProtocolError) {
        guard totalBytes <= maxPayloadBytes else {
            throw NATSProtocolError("a message of \(totalBytes) bytes is larger than the \(maxPayloadBytes) accepted")
        }
        guard let sidNumber = UInt64(String(decoding: sid, as: UTF8.self)) else {
            throw NATSProtocolError("a subscription id that is not a number: \(String(decoding: sid.prefix(32), as: UTF8.self).debugDescription)")
        }
        awaiting = Pending(subject: String(decoding: subject, as: UTF8.self), sid: sidNumber, replyTo: reply.map { String(decoding: $0, as: UTF8.self) },
                           headerBytes: headerBytes, totalBytes: totalBytes)
    }

    private static func number(_ word: ArraySlice<UInt8>, _ what: String) throws(NATSProtocolError) -> Int {
        guard word.count <= 10, let value = Int(String(decoding: word, as: UTF8.self)), value >= 0 else {
            throw NATSProtocolError("\(what) is not a size: \(String(decoding: word.prefix(32), as: UTF8.self).debugDescription)")
        }
        return value
    }

    /// `max_payload` from an INFO's JSON, found without parsing the rest.
    static func maxPayload(inInfo json: [UInt8]) -> Int? {
        let key = Array("\"max_payload\"".utf8)
        guard json.count >= key.count, let found = (0...(json.count - key.count)).first(where: { json[$0..<($0 + key.count)].elementsEqual(key) })
        else { return nil }
        let digits = json[(found + key.count)...].drop { $0 == 32 || $0 == UInt8(ascii: ":") }.prefix { $0 >= 48 && $0 <= 57 }
        guard digits.count <= 10 else { return nil }
        return Int(String(decoding: digits, as: UTF8.self))
    }
}

/// The server sent something that is not the NATS protocol: the connection is dropped and
/// made again.
public struct NATSProtocolError: Error, Equatable, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
