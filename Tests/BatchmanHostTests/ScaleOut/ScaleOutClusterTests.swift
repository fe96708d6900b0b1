import BatchmanNATS
import BatchmanTesting
import Foundation
import Glibc
import Testing

@testable import BatchmanHost

/// Three hosts on a 3-node JetStream cluster (R3): one host is killed with SIGKILL mid-stream
/// and then one server node; every job still gets its result, duplicates stay within what was
/// in flight, a key's results change host only at a takeover, and keys with one batch in
/// flight keep their order across it. (When the server's last follower is stuck in catch-up,
/// a nats-server 2.9 fault, the killed node is brought back; the hosts must say their results
/// stopped being stored, and store them all once the stream has its quorum again.)
@Suite struct ScaleOutClusterTests {
    static let partitions = 16
    static let jobCount = 100_000
    static let fetchBatch = 100

    @Test(.timeLimit(.minutes(20))) func threeHostsShareTheStreamThroughAHostKillAndAServerKill() async throws {
        let scratch = try Scratch()
        // The hosts run at the lowest priority (100,000 jobs through them would starve the tests
        // beside this one), the servers at the normal one: starved at nice 19 on two busy cores,
        // nats-server 2.9.10 dropped its routes as slow consumers and left streams without a
        // leader or with a follower stuck in catch-up, which is the cluster failing, not the hosts.
        guard let servers = try await NATSTestServers.start(3, in: scratch) else { return }
        defer { servers.stopAll() }
        let setup = try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "\(Self.partitions)", "--replicas", "3"])
        #expect(setup.status == 0, "\(setup.errorOutput)")
        let ordered = (0..<10).map { "ordered-\($0)" }
        let keys = (0..<490).map { "k\($0)" } + ordered
        let input = try scratch.write("jobs.ndjson", ScaleOutSupport.jobs(Self.jobCount, keys: keys).joined(separator: "\n") + "\n")
        let published = try await run("/usr/bin/nice", ["-n", "19", Products.batchman, "nats", "publish", "--server", servers.urls, "--input", input])
        #expect(published.status == 0, "\(published.errorOutput)")

        let manifest = try ScaleOutSupport.manifest(in: scratch, ordered: ordered)
        let names = ["a", "b", "c"]
        let hosts = try names.map { name in
            try HostProcess(["-n", "19", Products.batchman, "run", manifest, "--nats", servers.urls, "--name", name, "--lease-seconds", "10",
                             "--fetch-batch", "\(Self.fetchBatch)"], executable: "/usr/bin/nice")
        }
        let connection = try await servers.connect()
        defer { connection.close() }

        // Mid-stream, one host dies without a word, then one server node.
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: Self.jobCount / 4, connection: connection, seconds: 240) >= Self.jobCount / 4)
        kill(hosts[1].hostProcessIdentifier, SIGKILL)
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: Self.jobCount / 2, connection: connection, seconds: 240) >= Self.jobCount / 2)
        servers.kill(node: 2)
        var stored = try await ScaleOutSupport.waitForMessages("RESULTS", count: Self.jobCount, connection: connection, seconds: 60)
        if stored < Self.jobCount, let stuck = try await Self.stuckFollower(of: "RESULTS", connection) {
            // nats-server 2.9 can leave the one follower left stuck in catch-up after a peer is
            // killed under load (seen: its lag fixed at 2,922 for minutes, "has high message lag"
            // every 2 s): the stream has no quorum and stores nothing, for any client. An operator
            // brings the node back; so does the test, and the hosts, which kept retrying, must
            // then store every result.
            print("ScaleOutClusterTests: RESULTS stopped at \(stored) with follower \(stuck) stuck in catch-up; restarting the killed node")
            let live = [hosts[0], hosts[2]]
            #expect(live.contains { $0.stderr.elements.contains { $0.contains("not stored yet, the oldest sent") } }, "a host says its results stopped being stored")
            try servers.restart(node: 2)
            stored = try await ScaleOutSupport.waitForMessages("RESULTS", count: Self.jobCount, connection: connection, seconds: 300)
            #expect(live.contains { $0.stderr.elements.contains { $0.contains("nats: results are stored again, after") } })
        } else if stored < Self.jobCount {
            stored = try await ScaleOutSupport.waitForMessages("RESULTS", count: Self.jobCount, connection: connection, seconds: 240)
        }
        let consumers = stored >= Self.jobCount ? "" : try await Self.consumers(connection)
        #expect(stored >= Self.jobCount, "stalled; the partitions' consumers: \(consumers); the hosts said: \(Self.scaleOutLog(hosts))")
        for index in [0, 2] { hosts[index].signal(SIGTERM) }
        for index in [0, 2] { #expect(await hosts[index].exitStatus() == 0, "\(hosts[index].stderr.elements.suffix(20).joined(separator: "\n"))") }
        _ = await hosts[1].exitStatus()

        let results = try await ScaleOutSupport.results(connection)
        let unique = Set(results.map { "\($0.key)/\($0.id)" })
        #expect(unique.count == Self.jobCount, "every job has a stored result")
        let missing = Set(0..<Self.jobCount).subtracting(results.compactMap { Int($0.id) }).sorted()
        let resultsState = missing.isEmpty ? "" : try await Self.streamState("RESULTS", connection)
        let missingPartitions = Set(missing.map { SubjectToken.partition(ofKey: keys[$0 % keys.count], partitions: Self.partitions) }).sorted()
        #expect(missing.isEmpty, "\(missing.count) jobs have no result, among them \(missing.prefix(20).map { "k\($0 % 500)/\($0)" }); their partitions: \(missingPartitions); RESULTS: \(resultsState)")
        // Duplicates only of jobs in flight at the kills: at most two fetches a partition.
        #expect(results.count - unique.count <= Self.partitions * 2 * Self.fetchBatch, "\(results.count - unique.count) duplicates")
        // `nats publish` may store a job twice when a slow ack makes it retry (README, Limits):
        // a second copy that meets the first still pending is refused as a duplicate.
        let storedJobs = try await StreamReader.readAll("JOBS", connection: connection).compactMap { $0.json["id"] as? String }
        let storedTwice = Set(Dictionary(grouping: storedJobs, by: { $0 }).filter { $0.value.count > 1 }.keys)
        #expect(results.allSatisfy { ($0.status == "completed" || ($0.errorReason == "duplicate" && storedTwice.contains($0.id))) && names.contains($0.host) })

        for host in hosts {
            #expect(host.stderr.elements.contains { $0.contains("nats: 3 hosts alive (a, b, c): fair share 6 of 16 partitions") })
        }
        // A partition's results change host only where a host acquired it.
        var acquisitions = [Int](repeating: 0, count: Self.partitions)
        for host in hosts {
            for line in host.stderr.elements {
                guard let range = line.range(of: "nats: partition "), line.contains(": acquired") else { continue }
                if let partition = Int(line[range.upperBound...].prefix { $0.isNumber }) { acquisitions[partition] += 1 }
            }
        }
        var runs = [Int](repeating: 0, count: Self.partitions)
        var lastHost = [String?](repeating: nil, count: Self.partitions)
        for result in results where lastHost[result.partition] != result.host {
            runs[result.partition] += 1
            lastHost[result.partition] = result.host
        }
        for partition in 0..<Self.partitions {
            #expect(runs[partition] <= acquisitions[partition], "partition \(partition): \(runs[partition]) runs of hosts, \(acquisitions[partition]) acquisitions")
        }
        #expect(acquisitions.reduce(0, +) > Self.partitions, "the killed host's partitions were taken over")

        // Keys with one batch in flight: results in the order their jobs were stored.
        for key in ordered {
            let partition = SubjectToken.partition(ofKey: key, partitions: Self.partitions)
            var first = Set<String>()
            let jobs = try await StreamReader.readAll("JOBS", filter: "jobs.\(partition).\(key)", connection: connection)
                .compactMap { $0.json["id"] as? String }.filter { first.insert($0).inserted }  // a job stored twice counts where it was first
            var seen = Set<String>()
            let answered = results.filter { $0.key == key }.map(\.id).filter { seen.insert($0).inserted }
            #expect(answered == jobs, "\(key): results out of their jobs' order")
        }
    }

    /// A replica of `stream` that is alive and not current (the cluster's own stall), if any.
    static func stuckFollower(of stream: String, _ connection: NATSConnection) async throws -> String? {
        try await offThePool {
            let jetStream = JetStream(connection, timeout: .seconds(2))
            guard let reply = try? jetStream.api("$JS.API.STREAM.INFO.\(stream)"),
                  let info = try? JSONSerialization.jsonObject(with: Data(reply)) as? [String: Any],
                  let replicas = (info["cluster"] as? [String: Any])?["replicas"] as? [[String: Any]] else { return nil }
            // Alive: not marked offline, and heard from within 5 s (the killed node stays
            // unmarked for a while, its `active` growing).
            let stuck = replicas.first {
                ($0["offline"] as? Bool) != true && ($0["current"] as? Bool) == false && (($0["active"] as? Double) ?? .infinity) < 5e9
            }
            return stuck.map { "\($0["name"] ?? "?") (lag \($0["lag"] ?? "?"))" }
        }
    }

    /// A stream's sequence range, message count and deleted count, and its replicas: a stream
    /// whose range holds more than its count lost messages (the server's doing, not a host's).
    static func streamState(_ stream: String, _ connection: NATSConnection) async throws -> String {
        try await offThePool {
            let jetStream = JetStream(connection, timeout: .seconds(2))
            guard let reply = try? jetStream.api("$JS.API.STREAM.INFO.\(stream)") else { return "no answer" }
            return String(decoding: reply, as: UTF8.self)
        }
    }

    /// Each partition consumer's delivery state, for a stall's message.
    static func consumers(_ connection: NATSConnection) async throws -> String {
        try await offThePool {
            let jetStream = JetStream(connection, timeout: .seconds(2))
            let consumers = (try? jetStream.consumers(stream: "JOBS")) ?? []
            return consumers.sorted { $0.name < $1.name }.map {
                "\($0.name): delivered \($0.delivered.stream_seq), ack floor \($0.ack_floor.stream_seq), ack pending \($0.num_ack_pending), pending \($0.num_pending)"
            }.joined(separator: "; ")
        }
    }

    /// What the hosts logged about partitions and stores, beyond the routine.
    static func scaleOutLog(_ hosts: [HostProcess]) -> String {
        hosts.enumerated().map { index, host in
            let lines = host.stderr.elements.filter { $0.contains("nats:") && !$0.contains(": acquired") }
            return "host \(index): " + lines.suffix(15).joined(separator: " | ")
        }.joined(separator: "\n")
    }
}
