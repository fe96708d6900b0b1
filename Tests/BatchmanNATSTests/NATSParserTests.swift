import Testing

@testable import BatchmanNATS

/// The parser against bytes nats-server 2.9.10 sent (recorded on loopback), whole and in
/// pieces, and against what no server should send.
@Suite struct NATSParserTests {
    static let info = #"INFO {"server_id":"ND4IRNFJJZFUC45IMX2JXZFQX6EUPVOR4UA2FGYGXEIWEIVZP7WHLUJI","version":"2.9.10","proto":1,"go":"go1.19.8","host":"0.0.0.0","port":14222,"headers":true,"max_payload":1048576,"jetstream":true,"client_id":47,"client_ip":"127.0.0.1"} "# + "\r\n"
    /// Two deliveries of a pull request (on their own subjects, the request's sid) and a PING.
    static let deliveries = "HMSG jobs.0.k2 2 $JS.ACK.JOBS.capture.1.3.1.1796154046452715245.24999 31 76\r\nNATS/1.0\r\nNats-Msg-Id: k2/2\r\n\r\n"
        + #"{"key": "k2", "id": "2", "payload": {"n": 2}}"# + "\r\nHMSG jobs.0.k6 2 $JS.ACK.JOBS.capture.1.7.2.1796154046452788503.24998 31 76\r\n"
        + "NATS/1.0\r\nNats-Msg-Id: k6/6\r\n\r\n" + #"{"key": "k6", "id": "6", "payload": {"n": 6}}"# + "\r\nPING\r\n"
    /// The end of a pull request: status 408 on the reply subject, no reply-to (two spaces).
    static let requestTimeout = "HMSG _INBOX.pull 2  84 84\r\nNATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1002\r\nNats-Pending-Bytes: 0\r\n\r\n\r\n"
    static let noResponders = "HMSG _INBOX.cap.3 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    static let pubAck = "MSG _INBOX.cap.2 1  34\r\n" + #"{"stream":"RESULTS", "seq":100002}"# + "\r\n"
    static let duplicateAck = "MSG _INBOX.cap.2 1  52\r\n" + #"{"stream":"RESULTS", "seq":100002,"duplicate": true}"# + "\r\n"
    /// A copy that met its message id staged for a proposal not yet applied: nats-server before
    /// 2.11 says duplicate, of sequence 0; 2.11 says 409, "duplicate message id is in process".
    static let stagedDuplicateAck = "MSG _INBOX.cap.2 1  47\r\n" + #"{"stream":"RESULTS", "seq":0,"duplicate": true}"# + "\r\n"
    static let duplicateInProcess = "MSG _INBOX.cap.2 1  117\r\n"
        + #"{"error":{"code":409,"err_code":10158,"description":"duplicate message id is in process"},"stream":"RESULTS","seq":0}"# + "\r\n"
    static let wrongSequence = "MSG _INBOX.cap.5 1  117\r\n"
        + #"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 23"},"stream":"KV_batchman-leases","seq":0}"# + "\r\n"

    static func parse(_ text: String, pieceSize: Int? = nil) throws(NATSProtocolError) -> [NATSServerOp] {
        var parser = NATSParser()
        var ops: [NATSServerOp] = []
        let bytes = Array(text.utf8)
        let size = pieceSize ?? max(1, bytes.count)
        var start = 0
        while start < bytes.count {
            let piece = Array(bytes[start..<min(bytes.count, start + size)])
            try parser.feed(piece) { ops.append($0) }
            start += size
        }
        return ops
    }

    @Test func infoPingPongOkAndError() throws {
        let ops = try Self.parse(Self.info + "PING\r\nPONG\r\n+OK\r\n-ERR 'Authorization Violation'\r\n")
        #expect(ops.count == 5)
        guard case .info(let json) = ops[0] else { Issue.record("not INFO: \(ops[0])"); return }
        #expect(String(decoding: json, as: UTF8.self).hasPrefix(#"{"server_id":"#))
        #expect(NATSParser.maxPayload(inInfo: json) == 1_048_576)
        #expect(Array(ops[1...]) == [.ping, .pong, .ok, .error("Authorization Violation")])
    }

    @Test func deliveriesWholeAndByteByByte() throws {
        let whole = try Self.parse(Self.deliveries)
        #expect(try Self.parse(Self.deliveries, pieceSize: 1) == whole)
        #expect(try Self.parse(Self.deliveries, pieceSize: 7) == whole)
        #expect(whole.count == 3)
        guard case .message(let first) = whole[0] else { Issue.record("not a message"); return }
        #expect(first.subject == "jobs.0.k2")
        #expect(first.sid == 2)
        #expect(first.replyTo == "$JS.ACK.JOBS.capture.1.3.1.1796154046452715245.24999")
        #expect(first.headers?["nats-msg-id"] == "k2/2")
        #expect(first.status == nil)
        #expect(String(decoding: first.payload, as: UTF8.self) == #"{"key": "k2", "id": "2", "payload": {"n": 2}}"#)
        #expect(JetStream.streamSequence(ofReply: first.replyTo!) == 3)
        #expect(whole[2] == .ping)
    }

    @Test func statusMessages() throws {
        guard case .message(let timeout) = try Self.parse(Self.requestTimeout)[0] else { Issue.record("not a message"); return }
        #expect(timeout.status == 408)
        #expect(timeout.replyTo == nil)
        #expect(timeout.headers?.statusDescription == "Request Timeout")
        #expect(timeout.headers?["Nats-Pending-Messages"] == "1002")
        #expect(timeout.payload.isEmpty)
        guard case .message(let none) = try Self.parse(Self.noResponders)[0] else { Issue.record("not a message"); return }
        #expect(none.status == 503)
        #expect(throws: NATSError.self) { try JetStream.pubAck(none, subject: "results.0.k") }
    }

    @Test func acknowledgementsAsTheServerWritesThem() throws {
        guard case .message(let ack) = try Self.parse(Self.pubAck)[0], case .message(let duplicate) = try Self.parse(Self.duplicateAck)[0],
              case .message(let refused) = try Self.parse(Self.wrongSequence)[0] else { Issue.record("not messages"); return }
        #expect(JetStream.quickPubAck(ack.payload) == JetStream.PubAck(stream: "RESULTS", seq: 100_002, duplicate: nil))
        #expect(try JetStream.pubAck(duplicate, subject: "results.0.k1") == JetStream.PubAck(stream: "RESULTS", seq: 100_002, duplicate: true))
        #expect(JetStream.quickPubAck(refused.payload) == nil)
        do {
            _ = try JetStream.pubAck(refused, subject: "$KV.batchman-leases.jobs.partition.0")
            Issue.record("a refused publish was taken for stored")
        } catch {
            #expect(KeyValueBucket.isConflict(error))
        }
    }

    /// Taken for stored, such a copy lost its message: results whose jobs were acknowledged
    /// and never stored, in the 3-node test with a node killed. It is tried again.
    @Test(arguments: [stagedDuplicateAck, duplicateInProcess])
    func aDuplicateOfAMessageNotYetStoredIsTriedAgain(_ text: String) throws {
        guard case .message(let reply) = try Self.parse(text)[0] else { Issue.record("not a message"); return }
        do {
            let ack = try JetStream.pubAck(reply, subject: "results.0.k1")
            Issue.record("taken for stored: \(ack)")
        } catch {
            #expect(error.isTransient, "\(error)")
            #expect(error.description.contains("duplicate message id is in process"))
        }
    }

    @Test(arguments: [
        ("MSG a 1 5\r\nhelloXY", "not followed by CRLF"),
        ("MSG a 1 x\r\n", "not a size"),
        ("MSG a b 1\r\nx\r\n", "subscription id"),
        ("MSG a\r\n", "fields"),
        ("HMSG a 1 10 5\r\n", "longer than the message"),
        ("HMSG a 1 5 7\r\nHELLO\r\n\r\n", "not NATS/1.0 headers"),
        ("BOGUS 1\r\n", "unknown operation"),
        ("MSG a 1 99999999\r\n", "larger than"),
        ("INFO no json\r\n", "JSON"),
    ])
    func refusesWhatIsNotTheProtocol(_ input: String, _ reason: String) {
        do {
            _ = try Self.parse(input)
            Issue.record("\(input.debugDescription) was accepted")
        } catch {
            #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test func controlLineWithoutEndIsBounded() {
        var parser = NATSParser()
        let chunk = [UInt8](repeating: UInt8(ascii: "A"), count: 1024)
        var failure: NATSProtocolError?
        for _ in 0..<8 where failure == nil {
            do throws(NATSProtocolError) {
                try parser.feed(chunk) { _ in }
            } catch {
                failure = error
            }
        }
        #expect(failure?.description.contains("longer than 4096") == true)
    }

    @Test func infoRaisesTheMessageLimitToTheServers() throws {
        var parser = NATSParser(maxPayloadBytes: 1024)
        let info = Array(#"INFO {"max_payload":8388608}"#.utf8) + [13, 10]
        try parser.feed(info) { _ in }
        #expect(parser.maxPayloadBytes > 8_388_608)
    }

    @Test func headersRoundTrip() {
        let headers = NATSHeaders(fields: [("Nats-Msg-Id", "k/1"), ("Nats-Expected-Last-Subject-Sequence", "0")])
        #expect(String(decoding: headers.encoded, as: UTF8.self) == "NATS/1.0\r\nNats-Msg-Id: k/1\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n")
        #expect(NATSHeaders.parse(headers.encoded[...]) == headers)
        #expect(NATSHeaders.parse(Array("NATS/1.0 409 Consumer Deleted\r\n\r\n".utf8)[...])?.status == 409)
    }

    @Test func publishesAsTheServerTakesThem() {
        #expect(String(decoding: NATSConnection.encodePublish("a.b", replyTo: nil, headers: nil, payload: Array("hi".utf8)), as: UTF8.self)
            == "PUB a.b 2\r\nhi\r\n")
        let headers = NATSHeaders(fields: [("Nats-Msg-Id", "x")])
        #expect(String(decoding: NATSConnection.encodePublish("a", replyTo: "_INBOX.1", headers: headers, payload: Array("{}".utf8)), as: UTF8.self)
            == "HPUB a _INBOX.1 28 30\r\nNATS/1.0\r\nNats-Msg-Id: x\r\n\r\n{}\r\n")
    }

    @Test func ackSubjectsOfBothLayouts() {
        #expect(JetStream.streamSequence(ofReply: "$JS.ACK.JOBS.jobs-p3-17.1.4242.7.1796154046452715245.3") == 4242)
        #expect(JetStream.streamSequence(ofReply: "$JS.ACK.hub.ACCHASH.JOBS.c.1.4242.7.1796154046452715245.3.tok") == 4242)
        #expect(JetStream.streamSequence(ofReply: "_INBOX.x.1") == nil)
        #expect(JetStream.deliveryCount(ofReply: "$JS.ACK.JOBS.jobs-p3-17.1.4242.7.1796154046452715245.3") == 1)
        #expect(JetStream.deliveryCount(ofReply: "$JS.ACK.JOBS.jobs-p3-17.3.4242.7.1796154046452715245.3") == 3, "a redelivery")
        #expect(JetStream.deliveryCount(ofReply: "$JS.ACK.hub.ACCHASH.JOBS.c.2.4242.7.1796154046452715245.3.tok") == 2)
    }
}
