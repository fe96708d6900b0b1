/// What went wrong talking to NATS, said so that a user knows what to do.
public enum NATSError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A server list, subject or option that is not right.
    case usage(String)
    /// No server of the list could be reached (each tried, with why).
    case cannotConnect(String)
    /// The server refused our credentials.
    case authorization(String)
    /// No reply in time.
    case timeout(String)
    /// Nobody listens on the subject (status 503): for JetStream, no stream leader yet.
    case noResponders(String)
    /// A JetStream API error: its code, error code and text.
    case jetStream(code: Int, errorCode: Int, description: String)
    /// The connection was closed by us.
    case closed
    /// The server sent bytes that are not the protocol, or a reply we cannot read.
    case protocolError(String)

    public var description: String {
        switch self {
        case .usage(let text), .cannotConnect(let text), .authorization(let text), .timeout(let text), .noResponders(let text),
             .protocolError(let text):
            text
        case .jetStream(let code, let errorCode, let description): "JetStream error \(code) (\(errorCode)): \(description)"
        case .closed: "the NATS connection is closed"
        }
    }

    /// Worth trying again: the cluster is electing a leader, a node is down, a reply was lost,
    /// a message's first copy is not stored yet.
    public var isTransient: Bool {
        switch self {
        case .timeout, .noResponders, .cannotConnect: true
        case .jetStream(let code, let errorCode, _): code == 503 || code == 408 || code == 500 || errorCode == JetStream.duplicateInProcess
        default: false
        }
    }
}
