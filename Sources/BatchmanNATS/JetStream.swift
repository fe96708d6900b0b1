import FoundationEssentials

/// JetStream's API over a ``NATSConnection``: streams, consumers, publishing with an
/// acknowledgement, fetching from a pull consumer. Every call is one request on
/// `$JS.API.…` with a JSON body and a JSON reply; the blocking ones must not run on Swift's
/// cooperative pool.
public struct JetStream: Sendable {
    public let connection: NATSConnection
    /// How long one API request waits for its reply.
    public var timeout: Duration

    public init(_ connection: NATSConnection, timeout: Duration = .seconds(5)) {
        self.connection = connection
        self.timeout = timeout
    }

    // MARK: - Types the API speaks

    public struct StreamConfig: Codable, Equatable, Sendable {
        public var name: String
        public var subjects: [String]
        public var retention = "limits"
        public var storage = "file"
        public var num_replicas = 1
        public var discard = "old"
        public var max_msgs_per_subject: Int64 = -1
        public var max_age: Int64 = 0
        /// Nanoseconds in which a `Nats-Msg-Id` is remembered.
        public var duplicate_window: Int64 = 120_000_000_000
        public var allow_rollup_hdrs = false
        public var deny_delete = false
        public var allow_direct: Bool?
        public var description: String?

        public init(name: String, subjects: [String], replicas: Int) {
            self.name = name
            self.subjects = subjects
            self.num_replicas = replicas
        }
    }

    public struct StreamState: Decodable, Sendable {
        public var messages: UInt64
        public var bytes: UInt64
        public var first_seq: UInt64
        public var last_seq: UInt64
        public var consumer_count: Int?
        /// With a `subjects_filter`: each matching subject and its message count.
        public var subjects: [String: UInt64]?
    }

    public struct StreamInfo: Decodable, Sendable {
        public var config: StreamConfig
        public var state: StreamState
    }

    public struct ConsumerConfig: Codable, Equatable, Sendable {
        public var durable_name: String?
        public var deliver_policy = "all"
        public var opt_start_seq: UInt64?
        public var ack_policy = "explicit"
        /// Nanoseconds before an unacknowledged message is delivered again.
        public var ack_wait: Int64 = 30_000_000_000
        public var max_ack_pending = 1000
        public var max_waiting: Int?
        public var filter_subject: String?
        public var replay_policy = "instant"
        public var num_replicas: Int?

        public init(durable: String, filter: String?) {
            durable_name = durable
            filter_subject = filter
        }
    }

    public struct SequencePair: Decodable, Sendable {
        public var consumer_seq: UInt64
        public var stream_seq: UInt64
    }

    public struct ConsumerInfo: Decodable, Sendable {
        public var name: String
        public var config: ConsumerConfig
        public var delivered: SequencePair
        public var ack_floor: SequencePair
        public var num_ack_pending: Int
        public var num_pending: UInt64

        /// The stream sequence up to which every message was acknowledged, as far as this
        /// consumer knows: also what it was told to start after, if nothing was acked since.
        public var acknowledgedThrough: UInt64 {
            max(ack_floor.stream_seq, (config.opt_start_seq ?? 1) - 1)
        }
    }

    public struct PubAck: Decodable, Equatable, Sendable {
        public var stream: String
        public var seq: UInt64
        public var duplicate: Bool?
    }

    /// A message read back from a stream (`STREAM.MSG.GET`).
    public struct StoredMessage: Sendable {
        public var subject: String
        public var sequence: UInt64
        public var headers: NATSHeaders?
        public var data: [UInt8]
    }

    private struct APIError: Decodable {
        struct Body: Decodable {
            var code: Int
            var err_code: Int?
            var description: String?
        }
        var error: Body?
    }

    // MARK: - Requests

    /// One API request; its reply's JSON, or the API's error.
    @discardableResult
    public func api(_ subject: String, _ body: [UInt8] = []) throws(NATSError) -> [UInt8] {
        let reply = try connection.request(subject, payload: body, timeout: timeout)
        if let failure = try? JSONDecoder().decode(APIError.self, from: Data(reply.payload)), let error = failure.error {
            throw NATSError.jetStream(code: error.code, errorCode: error.err_code ?? 0, description: error.description ?? "")
        }
        return reply.payload
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], from subject: String) throws(NATSError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw NATSError.protocolError("cannot read the reply to \(subject): \(error)")
        }
    }

    /// A value as a JSON body (API requests, KV values).
    public static func encode(_ value: some Encodable) -> [UInt8] {
        // Encoding our own types cannot fail.
        Array((try? JSONEncoder().encode(value)) ?? Data())
    }

    /// A stream's configuration and state; nil if there is no such stream.
    public func streamInfo(_ name: String, subjectsFilter: String? = nil) throws(NATSError) -> StreamInfo? {
        let subject = "$JS.API.STREAM.INFO.\(name)"
        do {
            let body = subjectsFilter.map { Self.encode(["subjects_filter": $0]) } ?? []
            return try decode(StreamInfo.self, try api(subject, body), from: subject)
        } catch .jetStream(_, 10059, _) {
            return nil
        }
    }

    public func addStream(_ config: StreamConfig) throws(NATSError) -> StreamInfo {
        let subject = "$JS.API.STREAM.CREATE.\(config.name)"
        return try decode(StreamInfo.self, try api(subject, Self.encode(config)), from: subject)
    }

    /// Creates a durable consumer, or updates it if one of that name exists.
    public func addConsumer(stream: String, _ config: ConsumerConfig) throws(NATSError) -> ConsumerInfo {
        struct Request: Encodable {
            var stream_name: String
            var config: ConsumerConfig
        }
        let subject = "$JS.API.CONSUMER.DURABLE.CREATE.\(stream).\(config.durable_name ?? "")"
        return try decode(ConsumerInfo.self, try api(subject, Self.encode(Request(stream_name: stream, config: config))), from: subject)
    }

    public func consumerInfo(stream: String, name: String) throws(NATSError) -> ConsumerInfo? {
        let subject = "$JS.API.CONSUMER.INFO.\(stream).\(name)"
        do {
            return try decode(ConsumerInfo.self, try api(subject), from: subject)
        } catch .jetStream(_, 10014, _) {
            return nil
        }
    }

    /// Deletes a consumer; false if there was none.
    @discardableResult
    public func deleteConsumer(stream: String, name: String) throws(NATSError) -> Bool {
        do {
            try api("$JS.API.CONSUMER.DELETE.\(stream).\(name)")
            return true
        } catch .jetStream(_, 10014, _) {
            return false
        }
    }

    /// Every consumer of `stream` that answered, page by page.
    public func consumers(stream: String) throws(NATSError) -> [ConsumerInfo] {
        try consumerList(stream: stream).consumers
    }

    /// Every consumer of `stream`, page by page: those that answered, and the names of those
    /// that did not (a clustered server lists a consumer whose replicas have no leader as
    /// `missing`, without its state).
    public func consumerList(stream: String) throws(NATSError) -> (consumers: [ConsumerInfo], missing: [String]) {
        struct Page: Decodable {
            var total: Int
            var offset: Int
            var consumers: [ConsumerInfo]?
            var missing: [String]?
        }
        var all: [ConsumerInfo] = []
        var missing: [String] = []
        let subject = "$JS.API.CONSUMER.LIST.\(stream)"
        while true {
            let page = try decode(Page.self, try api(subject, Self.encode(["offset": all.count + missing.count])), from: subject)
            all += page.consumers ?? []
            missing += page.missing ?? []
            if page.consumers?.isEmpty ?? true || all.count + missing.count >= page.total { return (all, missing) }
        }
    }

    /// The last message stored on `subject` in `stream`; nil if there is none.
    public func lastMessage(stream: String, subject: String) throws(NATSError) -> StoredMessage? {
        struct Reply: Decodable {
            struct Message: Decodable {
                var subject: String
                var seq: UInt64
                var hdrs: String?
                var data: String?
            }
            var message: Message
        }
        let api = "$JS.API.STREAM.MSG.GET.\(stream)"
        let reply: Reply
        do {
            reply = try decode(Reply.self, try self.api(api, Self.encode(["last_by_subj": subject])), from: api)
        } catch .jetStream(_, 10037, _) {
            return nil
        }
        let headers = reply.message.hdrs.flatMap { Data(base64Encoded: $0) }.flatMap { NATSHeaders.parse(Array($0)[...]) }
        let data = reply.message.data.flatMap { Data(base64Encoded: $0) }.map { Array($0) } ?? []
        return StoredMessage(subject: reply.message.subject, sequence: reply.message.seq, headers: headers, data: data)
    }

    /// Removes every message of `stream` on `subject`.
    public func purge(stream: String, subject: String) throws(NATSError) {
        try api("$JS.API.STREAM.PURGE.\(stream)", Self.encode(["filter": subject]))
    }

    /// Publishes and waits for the stream's acknowledgement (one try).
    public func publish(_ subject: String, headers: NATSHeaders? = nil, payload: [UInt8]) throws(NATSError) -> PubAck {
        let reply = try connection.request(subject, headers: headers, payload: payload, timeout: timeout)
        return try Self.pubAck(reply, subject: subject)
    }

    /// A publish's reply as an acknowledgement, or the error it says.
    public static func pubAck(_ reply: NATSMessage, subject: String) throws(NATSError) -> PubAck {
        if reply.status == 503 { throw NATSError.noResponders("no stream stores \(subject) yet (503: no leader, or no such stream)") }
        // The common reply, {"stream":"S","seq":N[,"duplicate":true]}, is read by hand: one for
        // every message published, on the connection's reader thread.
        if let ack = quickPubAck(reply.payload) { return try stored(ack) }
        if let failure = try? JSONDecoder().decode(APIError.self, from: Data(reply.payload)), let error = failure.error {
            throw NATSError.jetStream(code: error.code, errorCode: error.err_code ?? 0, description: error.description ?? "")
        }
        guard let ack = try? JSONDecoder().decode(PubAck.self, from: Data(reply.payload)) else {
            throw NATSError.protocolError("the reply to a publish on \(subject) is not an acknowledgement")
        }
        return try stored(ack)
    }

    /// The error code nats-server 2.11 answers with (409) for a message id whose first copy is
    /// staged for a proposal not yet applied: "duplicate message id is in process".
    public static let duplicateInProcess = 10158

    /// `ack`, unless it says a duplicate of sequence 0. A clustered stream checks message ids
    /// before it proposes a message, and stages the id at sequence 0 until the proposal is
    /// applied; nats-server before 2.11 answers a copy that meets the staged id as a duplicate
    /// of sequence 0. Nothing is stored yet, and if the proposal is lost (its leader stepped
    /// down, its quorum gone) nothing ever will be under that id until the duplicate window
    /// ends. Taken for stored, the message was lost (results whose jobs were then acknowledged,
    /// in a 3-node test with a node killed); it is answered as 2.11 does, and tried again.
    static func stored(_ ack: PubAck) throws(NATSError) -> PubAck {
        guard ack.duplicate == true, ack.seq == 0 else { return ack }
        throw NATSError.jetStream(code: 409, errorCode: duplicateInProcess,
                                  description: "duplicate message id is in process (stream \(ack.stream) has not stored its first copy yet)")
    }

    /// `{"stream":"S", "seq":N}` with an optional `,"duplicate": true`, spaces as the server
    /// writes them or not; nil for anything else (an error, a domain), then decoded in full.
    static func quickPubAck(_ bytes: [UInt8]) -> PubAck? {
        var scanner = AckScanner(bytes: bytes)
        guard scanner.take("{"), scanner.take("\"stream\""), scanner.take(":"), let stream = scanner.string(), scanner.take(","),
              scanner.take("\"seq\""), scanner.take(":"), let seq = scanner.number() else { return nil }
        var duplicate: Bool?
        if scanner.take(",") {
            guard scanner.take("\"duplicate\""), scanner.take(":") else { return nil }
            if scanner.take("true") { duplicate = true } else if scanner.take("false") { duplicate = false } else { return nil }
        }
        guard scanner.take("}"), scanner.atEnd else { return nil }
        return PubAck(stream: stream, seq: seq, duplicate: duplicate)
    }

    private struct AckScanner {
        let bytes: [UInt8]
        var index = 0

        mutating func skipSpaces() {
            while index < bytes.count, bytes[index] == 32 { index += 1 }
        }

        /// Takes `literal` after any spaces.
        mutating func take(_ literal: StaticString) -> Bool {
            skipSpaces()
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            let matches = literal.withUTF8Buffer { literal in bytes[index..<(index + count)].elementsEqual(literal) }
            if matches { index += count }
            return matches
        }

        /// A string without escapes.
        mutating func string() -> String? {
            guard take("\"") else { return nil }
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\") { index += 1 }
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            defer { index += 1 }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func number() -> UInt64? {
            skipSpaces()
            var value: UInt64 = 0
            var digits = 0
            while index < bytes.count, (48...57).contains(bytes[index]), digits < 19 {
                value = value * 10 + UInt64(bytes[index] - 48)
                index += 1
                digits += 1
            }
            return digits > 0 ? value : nil
        }

        var atEnd: Bool {
            mutating get {
                skipSpaces()
                return index == bytes.count
            }
        }
    }

    /// Asks a pull consumer for up to `batch` messages within `expires`, delivered to `replyTo`
    /// (a subject subscribed for this request alone: deliveries come with its subscription id but
    /// on their own subjects); the server ends the request with a 408 status, or by
    /// delivering `batch`.
    public func pull(stream: String, consumer: String, batch: Int, expires: Duration, replyTo: String) {
        let nanoseconds = Int64(expires.components.seconds) * 1_000_000_000 + expires.components.attoseconds / 1_000_000_000
        connection.publish("$JS.API.CONSUMER.MSG.NEXT.\(stream).\(consumer)", replyTo: replyTo,
                           payload: Array("{\"batch\":\(batch),\"expires\":\(nanoseconds)}".utf8))
    }

    /// Acknowledges a delivered message (its reply subject), in progress (`+WPI`: the ack wait
    /// starts again) or not (`-NAK`: deliver again).
    public func acknowledge(_ replyTo: String, _ kind: Acknowledgement = .ack) {
        connection.publish(replyTo, payload: kind.bytes)
    }

    public enum Acknowledgement: Sendable {
        case ack, inProgress, notAcknowledged
        var bytes: [UInt8] {
            switch self {
            case .ack: Array("+ACK".utf8)
            case .inProgress: Array("+WPI".utf8)
            case .notAcknowledged: Array("-NAK".utf8)
            }
        }
    }

    /// The stream sequence of a delivery, from its reply subject
    /// (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`,
    /// or with domain and account hash first in newer servers).
    public static func streamSequence(ofReply reply: String) -> UInt64? {
        replyField(reply, at: 5)
    }

    /// How many times the consumer has delivered the message, from its reply subject (1 on the
    /// first delivery).
    public static func deliveryCount(ofReply reply: String) -> UInt64? {
        replyField(reply, at: 4)
    }

    /// The number at `position` of an ack reply subject in its nine-token form.
    private static func replyField(_ reply: String, at position: Int) -> UInt64? {
        let tokens = reply.split(separator: ".")
        guard tokens.count >= 9, tokens[0] == "$JS", tokens[1] == "ACK" else { return nil }
        // Two more tokens (domain, account hash) come before the stream's name in the newer form.
        return UInt64(tokens[tokens.count == 9 ? position : position + 2])
    }
}
