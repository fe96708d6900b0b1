import BatchmanNATS
import Foundation
import Glibc

/// What the scale-out tests share: waiting for a stream to fill, reading results.
enum ScaleOutSupport {
    /// Waits (polling the stream's state, giving up after `seconds` in which it did not grow)
    /// until `stream` holds `count` messages; returns how many it holds.
    @discardableResult
    static func waitForMessages(_ stream: String, count: Int, connection: NATSConnection, seconds: Int = 120) async throws -> Int {
        try await offThePool {
            let jetStream = JetStream(connection, timeout: .seconds(2))
            var held = 0
            // `seconds` without progress, not in all: on a loaded machine the hosts slow down but
            // keep going; a stall is what fails.
            var progressed = ContinuousClock.now
            while ContinuousClock.now - progressed < .seconds(seconds) {
                let now = Int((try? jetStream.streamInfo(stream))??.state.messages ?? 0)
                if now >= count { return now }
                if now > held {
                    held = now
                    progressed = ContinuousClock.now
                }
                usleep(100_000)
            }
            return held
        }
    }

    /// Job lines: `count` jobs over `keys` keys named `prefix<n>`, ids in order per key.
    static func jobs(_ count: Int, keys: [String]) -> [String] {
        (0..<count).map { index in #"{"key":"\#(keys[index % keys.count])","id":"\#(index)","payload":{"n":\#(index)}}"# }
    }

    /// The echo manifest the hosts run: batches of up to 100, flushed after 20 ms; keys in
    /// `ordered` keep one batch in flight at a time.
    static func manifest(in scratch: Scratch, ordered: [String] = []) throws -> String {
        let echo = Products.plugin("EchoPlugin")
        let orderedEntries = ordered.map { #""\#($0)": {"plugin": "\#(echo)", "maxInFlight": 1}"# }
        return try scratch.manifest("{" + ([#""default": {"plugin": "\#(echo)"}"#] + orderedEntries).joined(separator: ", ") + "}",
                                    defaults: #"{"frequency": 20, "maxBatchSize": 100}"#)
    }

    /// Results read back, by their `host`, `partition`, `key` and `id`.
    struct StoredResult {
        var subject: String
        var host: String
        var partition: Int
        var key: String
        var id: String
        var status: String
        var errorReason: String?
        /// The result's `"redelivered"`, for plugins that report it (the ABI 1.1 hints plugin).
        var redelivered: Bool?
    }

    static func results(_ connection: NATSConnection) async throws -> [StoredResult] {
        try await StreamReader.readAll("RESULTS", connection: connection).map { stored in
            let json = stored.json
            return StoredResult(subject: stored.subject, host: json["host"] as? String ?? "?", partition: json["partition"] as? Int ?? -1,
                                key: json["key"] as? String ?? "?", id: json["id"] as? String ?? "?", status: json["status"] as? String ?? "?",
                                errorReason: json["errorReason"] as? String,
                                redelivered: (json["result"] as? [String: Any])?["redelivered"] as? Bool)
        }
    }
}
