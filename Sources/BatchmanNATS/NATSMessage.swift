/// A message the server delivered (`MSG` or `HMSG`): its subject, the subscription it came on,
/// where to reply, its headers (with a status, for JetStream's 404, 408, 409 and 503) and payload.
public struct NATSMessage: Equatable, Sendable {
    public var subject: String
    public var sid: UInt64
    public var replyTo: String?
    public var headers: NATSHeaders?
    public var payload: [UInt8]

    public init(subject: String, sid: UInt64, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]) {
        self.subject = subject
        self.sid = sid
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
    }

    /// The status code of a status message (`NATS/1.0 503`), nil for a message with data.
    public var status: Int? { headers?.status }
}

/// One protocol operation from the server.
public enum NATSServerOp: Equatable, Sendable {
    /// `INFO {json}`: the server's identity, limits and cluster peers.
    case info([UInt8])
    case message(NATSMessage)
    case ping
    case pong
    case ok
    /// `-ERR 'text'`: the server's complaint; most close the connection.
    case error(String)
}
