import FoundationEssentials

/// A JetStream key-value bucket, in the layout every NATS client shares: stream `KV_<bucket>`
/// on `$KV.<bucket>.>`, the last value of each key kept, a key's revision its message's
/// sequence, deletions as markers (`KV-Operation`). Compare-and-set by
/// `Nats-Expected-Last-Subject-Sequence`: the primitive the host's partition leases stand on.
public struct KeyValueBucket: Sendable {
    public let jetStream: JetStream
    public let name: String

    public init(jetStream: JetStream, name: String) {
        self.jetStream = jetStream
        self.name = name
    }

    public var streamName: String { "KV_\(name)" }
    public func subject(_ key: String) -> String { "$KV.\(name).\(key)" }

    public struct Entry: Equatable, Sendable {
        public var key: String
        public var value: [UInt8]
        public var revision: UInt64
        /// A delete or purge marker: the key has no value, and `revision` is what a create
        /// must expect.
        public var isDeleted: Bool
    }

    /// Opens the bucket, creating it first if it does not exist (with `replicas`).
    /// - Returns: the bucket, and whether it was created now.
    public static func create(_ jetStream: JetStream, name: String, replicas: Int, description: String? = nil) throws(NATSError) -> (KeyValueBucket, Bool) {
        let bucket = KeyValueBucket(jetStream: jetStream, name: name)
        if try jetStream.streamInfo(bucket.streamName) != nil { return (bucket, false) }
        var config = JetStream.StreamConfig(name: bucket.streamName, subjects: ["$KV.\(name).>"], replicas: replicas)
        config.max_msgs_per_subject = 1
        config.discard = "new"
        config.allow_rollup_hdrs = true
        config.deny_delete = true
        config.allow_direct = true
        config.description = description
        do {
            _ = try jetStream.addStream(config)
        } catch .jetStream(_, 10058, _) {
            // Created meanwhile by another: the same.
        }
        return (bucket, true)
    }

    /// The bucket if it exists.
    public static func open(_ jetStream: JetStream, name: String) throws(NATSError) -> KeyValueBucket? {
        let bucket = KeyValueBucket(jetStream: jetStream, name: name)
        return try jetStream.streamInfo(bucket.streamName) == nil ? nil : bucket
    }

    public func get(_ key: String) throws(NATSError) -> Entry? {
        guard let message = try jetStream.lastMessage(stream: streamName, subject: subject(key)) else { return nil }
        let operation = message.headers?["KV-Operation"]
        return Entry(key: key, value: message.data, revision: message.sequence, isDeleted: operation == "DEL" || operation == "PURGE")
    }

    /// Sets `key` if it has no value now (never set, or deleted at `revision`).
    /// - Throws: `.jetStream(errorCode: 10071)` (wrong last sequence) if another got there first.
    public func create(_ key: String, _ value: [UInt8], replacingDeletedAt revision: UInt64 = 0) throws(NATSError) -> UInt64 {
        try update(key, value, expecting: revision)
    }

    /// Sets `key` only if its revision is still `revision`; returns the new one.
    public func update(_ key: String, _ value: [UInt8], expecting revision: UInt64) throws(NATSError) -> UInt64 {
        let headers = NATSHeaders(fields: [("Nats-Expected-Last-Subject-Sequence", String(revision))])
        return try jetStream.publish(subject(key), headers: headers, payload: value).seq
    }

    public func put(_ key: String, _ value: [UInt8]) throws(NATSError) -> UInt64 {
        try jetStream.publish(subject(key), payload: value).seq
    }

    /// Leaves a purge marker as the key's only message, if its revision is still `revision`
    /// (any, if nil).
    public func purge(_ key: String, expecting revision: UInt64? = nil) throws(NATSError) {
        var fields: [(name: String, value: String)] = [("KV-Operation", "PURGE"), ("Nats-Rollup", "sub")]
        if let revision { fields.append(("Nats-Expected-Last-Subject-Sequence", String(revision))) }
        _ = try jetStream.publish(subject(key), headers: NATSHeaders(fields: fields), payload: [])
    }

    /// The keys under `prefix` (`host.` lists `host.*`, as whole keys: `host.a`) that have a
    /// message, deleted or not.
    public func keys(under prefix: String) throws(NATSError) -> [String] {
        let filter = subject(prefix) + "*"
        let info = try jetStream.streamInfo(streamName, subjectsFilter: filter)
        let start = subject("").count
        return (info?.state.subjects ?? [:]).keys.map { String($0.dropFirst(start)) }.sorted()
    }

    /// Whether an error is a compare-and-set that lost.
    public static func isConflict(_ error: NATSError) -> Bool {
        if case .jetStream(_, 10071, _) = error { return true }
        return false
    }
}
