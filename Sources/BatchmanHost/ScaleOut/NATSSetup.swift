import Batchman
import BatchmanNATS
import FoundationEssentials
import Glibc

/// What `batchman nats setup` was asked to do.
public struct NATSSetupOptions: Equatable, Sendable {
    public var servers: [NATSServerURL]
    public var partitions: Int
    public var replicas = 1
    public var prefix = "jobs"

    public init(servers: [NATSServerURL], partitions: Int) {
        self.servers = servers
        self.partitions = partitions
    }
}

/// `batchman nats setup`: creates what a scale-out needs, if it is not there yet (the job
/// stream, the results stream, the lease bucket and the partition count in it), and says what
/// exists. Run it again and it changes nothing; run it with another partition count and it
/// refuses (keys would move between partitions under running hosts).
public enum NATSSetup {
    public static func run(_ options: NATSSetupOptions, logger: BatchmanLogger = .standardError) throws(HostError) -> String {
        let layout = ScaleOutLayout(prefix: options.prefix)
        let connection = try ScaleOutConnection.connect(options.servers, name: "batchman nats setup", logger: logger, waitingSeconds: 10)
        defer { connection.close() }
        let jetStream = JetStream(connection)
        var report: [String] = []
        func attempt<T>(_ what: String, _ body: () throws(NATSError) -> T) throws(HostError) -> T {
            // A cluster electing its leaders answers 503 for a few seconds: wait that out.
            var tries = 0
            while true {
                do throws(NATSError) {
                    return try body()
                } catch {
                    tries += 1
                    guard error.isTransient, tries < 20 else { throw ScaleOutConnection.failure(error, what) }
                    NATSWait.sleep(.milliseconds(500))
                }
            }
        }

        // The bucket first: its partition count decides whether the rest may be made.
        let (bucket, bucketCreated) = try attempt("creating bucket \(ScaleOutLayout.bucket)") { () throws(NATSError) in
            try KeyValueBucket.create(jetStream, name: ScaleOutLayout.bucket, replicas: options.replicas,
                                      description: "batchman: partition leases and live hosts")
        }
        let stored = try attempt("reading \(layout.configKey)") { () throws(NATSError) in try bucket.get(layout.configKey) }
        if let stored, !stored.isDeleted, let config = try? JSONDecoder().decode(ScaleOutLayout.Config.self, from: Data(stored.value)),
           config.partitions != options.partitions {
            throw HostError(.configuration, "nats: prefix \(options.prefix) already has \(config.partitions) partitions; --partitions \(options.partitions) "
                            + "would move keys between partitions under running hosts (delete stream \(layout.jobStream) and bucket "
                            + "\(ScaleOutLayout.bucket) first to start over)")
        }
        if stored == nil || stored!.isDeleted {
            let config = JetStream.encode(ScaleOutLayout.Config(partitions: options.partitions, prefix: options.prefix))
            _ = try attempt("storing \(layout.configKey)") { () throws(NATSError) -> UInt64 in
                do throws(NATSError) {
                    return try bucket.create(layout.configKey, config, replacingDeletedAt: stored?.revision ?? 0)
                } catch let error where KeyValueBucket.isConflict(error) {
                    return 0  // another setup stored it meanwhile; checked below
                }
            }
        }

        for (name, subjects) in [(layout.jobStream, layout.jobSubjects), (ScaleOutLayout.resultStream, ScaleOutLayout.resultSubjects)] {
            let existing = try attempt("looking up stream \(name)") { () throws(NATSError) in try jetStream.streamInfo(name) }
            var created = false
            if let existing {
                guard existing.config.subjects == [subjects] else {
                    throw HostError(.configuration, "nats: stream \(name) exists with subjects \(existing.config.subjects.joined(separator: ", ")), "
                                    + "not \(subjects); give another --prefix, or delete the stream")
                }
            } else {
                _ = try attempt("creating stream \(name)") { () throws(NATSError) -> JetStream.StreamInfo in
                    do throws(NATSError) {
                        return try jetStream.addStream(JetStream.StreamConfig(name: name, subjects: [subjects], replicas: options.replicas))
                    } catch .jetStream(_, 10058, let text) {
                        // Made meanwhile by another setup: look again.
                        guard let made = try jetStream.streamInfo(name) else { throw NATSError.jetStream(code: 400, errorCode: 10058, description: text) }
                        return made
                    }
                }
                created = true
            }
            let info = try attempt("looking up stream \(name)") { () throws(NATSError) in try jetStream.streamInfo(name) }
            let count = info?.state.messages ?? 0
            let noun = name == layout.jobStream ? "jobs" : "results"
            let extra = name == layout.jobStream ? ", \(options.partitions) partitions" : ""
            report.append("stream \(name): \(subjects), \(HostSession.count(info?.config.num_replicas ?? options.replicas, "replica"))\(extra), "
                          + "\(count) \(noun) (\(created ? "created" : "exists"))")
        }
        let hosts = try attempt("listing hosts") { () throws(NATSError) in try bucket.keys(under: layout.hostKeyPrefix) }
        let leases = try attempt("reading leases") { () throws(NATSError) -> Int in
            var held = 0
            for key in try bucket.keys(under: "\(options.prefix).partition.") where !(try bucket.get(key)?.isDeleted ?? true) {
                held += 1
            }
            return held
        }
        report.append("bucket \(ScaleOutLayout.bucket): \(HostSession.count(options.replicas, "replica")), \(HostSession.count(hosts.count, "host")) announced, "
                      + "\(leases) of \(options.partitions) partitions leased (\(bucketCreated ? "created" : "exists"))")
        return report.joined(separator: "\n")
    }
}

/// Sleeping on a thread of our own (the scale-out's commands and its coordinator).
enum NATSWait {
    static func sleep(_ duration: Duration) {
        var time = timespec(tv_sec: Int(duration.components.seconds), tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
        var left = timespec()
        while nanosleep(&time, &left) != 0 && errno == EINTR { time = left }
    }
}
