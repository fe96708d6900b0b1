import Batchman
import BatchmanNATS
import FoundationEssentials
import Glibc

/// Where a scale-out's jobs, results and leases live in JetStream, from one prefix (`jobs`):
///
/// - stream `JOBS` on `jobs.*.*`: a job on `jobs.<partition>.<key token>`;
/// - stream `RESULTS` on `results.>`: a result on `results.<partition>.<key token>`;
/// - bucket `batchman-leases`: `jobs.config` (how many partitions), `jobs.partition.<p>`
///   (who owns a partition), `jobs.host.<name>` (who is alive);
/// - one durable pull consumer per partition, `jobs-p<p>-<lease revision>`, made anew by each
///   owner at the ack floor of the one before.
public struct ScaleOutLayout: Equatable, Sendable {
    public var prefix: String

    public init(prefix: String = "jobs") { self.prefix = prefix }

    public var jobStream: String { prefix.uppercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() }
    public static let resultStream = "RESULTS"
    public static let resultSubjects = "results.>"
    public static let bucket = "batchman-leases"
    public var jobSubjects: String { "\(prefix).*.*" }

    public func jobSubject(partition: Int, key: String) -> String { "\(prefix).\(partition).\(SubjectToken.encode(key))" }
    public func partitionFilter(_ partition: Int) -> String { "\(prefix).\(partition).*" }
    public static func resultSubject(partition: Int, key: String) -> String { "results.\(partition).\(SubjectToken.encode(key))" }
    /// `Nats-Msg-Id` of a job and of its result: key and id, each as a subject token (so
    /// that no byte of theirs can break a header line).
    public static func messageId(key: String, id: String) -> String { "\(SubjectToken.encode(key))/\(SubjectToken.encode(id))" }

    public var configKey: String { "\(prefix).config" }
    public func leaseKey(_ partition: Int) -> String { "\(prefix).partition.\(partition)" }
    public var hostKeyPrefix: String { "\(prefix).host." }
    public func hostKey(_ name: String) -> String { hostKeyPrefix + SubjectToken.encode(name) }

    public func consumerPrefix(_ partition: Int) -> String { "\(prefix)-p\(partition)-" }
    public func consumerName(_ partition: Int, revision: UInt64) -> String { consumerPrefix(partition) + String(revision) }

    /// What `batchman nats setup` records: the number of partitions, for hosts and producers.
    public struct Config: Codable, Equatable, Sendable {
        public var partitions: Int
        public var prefix: String
    }

    /// Reads the partition count that `batchman nats setup` stored.
    func readConfig(_ bucket: KeyValueBucket) throws(HostError) -> Config {
        let entry: KeyValueBucket.Entry?
        do {
            entry = try bucket.get(configKey)
        } catch {
            throw HostError(.runtime, "nats: cannot read \(configKey) from bucket \(Self.bucket): \(error)")
        }
        guard let entry, !entry.isDeleted, let config = try? JSONDecoder().decode(Config.self, from: Data(entry.value)) else {
            throw HostError(.configuration, "nats: no partition count for prefix \(prefix) in bucket \(Self.bucket); run batchman nats setup --server URLS --partitions N first")
        }
        return config
    }

    static func openBucket(_ jetStream: JetStream) throws(HostError) -> KeyValueBucket {
        let bucket: KeyValueBucket?
        do {
            bucket = try KeyValueBucket.open(jetStream, name: Self.bucket)
        } catch {
            throw HostError(.runtime, "nats: cannot look up bucket \(Self.bucket): \(error)")
        }
        guard let bucket else {
            throw HostError(.configuration, "nats: there is no bucket \(Self.bucket); run batchman nats setup --server URLS --partitions N first")
        }
        return bucket
    }
}

/// `--nats` and the options that go with it, for `batchman run`.
public struct NATSRunOptions: Equatable, Sendable {
    public var servers: [NATSServerURL]
    public var partitions = PartitionChoice.auto
    /// `--name`: the host in leases and result lines; default `hostname:pid`.
    public var name: String?
    public var prefix = "jobs"
    /// `--lease-seconds`: an owner that has not renewed its lease for this long loses it.
    /// Longer than a JetStream leader election (5.5 to 8.5 s seen when a node dies), so that
    /// losing a server node does not move partitions.
    public var leaseSeconds = 15
    /// `--fetch-batch`: jobs asked for in one pull request.
    public var fetchBatch = 1000

    public init(servers: [NATSServerURL]) { self.servers = servers }

    public enum PartitionChoice: Equatable, Sendable {
        /// A fair share, ceil(partitions / live hosts), rebalanced as hosts come and go.
        case auto
        /// These partitions, taken over whenever their lease is free.
        case list([Int])
    }
}

/// How a scale-out command connects: the server list, and the credentials from the
/// environment for URLs that carry none.
enum ScaleOutConnection {
    /// Connects; with `waitingSeconds`, a cluster still starting (nothing listening yet) is
    /// tried again every half second for that long.
    static func connect(_ servers: [NATSServerURL], name: String, logger: BatchmanLogger, waitingSeconds: Int = 0) throws(HostError) -> NATSConnection {
        var options = NATSConnection.Options(servers: servers)
        options.name = name
        let environment = ProcessEnvironment()
        options.user = environment["BATCHMAN_NATS_USER"]
        options.password = environment["BATCHMAN_NATS_PASSWORD"]
        options.token = environment["BATCHMAN_NATS_TOKEN"]
        options.log = { logger.log(.warning, $0) }
        var connection: NATSConnection?
        for attempt in 0...(waitingSeconds * 2) where connection == nil {
            switch Result(catching: { () throws(NATSError) in try NATSConnection.connect(options) }) {
            case .success(let made): connection = made
            case .failure(.usage(let text)): throw HostError(.usage, text)
            case .failure(.cannotConnect) where attempt < waitingSeconds * 2: NATSWait.sleep(.milliseconds(500))
            case .failure(let error): throw HostError(.unavailable, "nats: \(error)")
            }
        }
        guard let connection else { throw HostError(.unavailable, "nats: no server answered") }
        guard connection.serverInfo.jetstream ?? false else {
            connection.close()
            throw HostError(.unavailable, "nats: \(servers[0]) has no JetStream; start nats-server with -js (or jetstream {} in its configuration)")
        }
        return connection
    }

    /// A NATS error as the host's, said with `what` was being done.
    static func failure(_ error: NATSError, _ what: String) -> HostError {
        HostError(error.isTransient ? .unavailable : .runtime, "nats: \(what): \(error)")
    }
}

/// The environment, read once.
struct ProcessEnvironment {
    subscript(name: String) -> String? { getenv(name).map { String(cString: $0) } }
}
