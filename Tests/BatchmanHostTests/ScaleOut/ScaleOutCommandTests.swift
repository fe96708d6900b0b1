import BatchmanNATS
import Foundation
import Testing

@testable import BatchmanHost

/// `batchman nats setup` and `batchman nats publish` against a real nats-server.
@Suite struct ScaleOutCommandTests {
    @Test(.timeLimit(.minutes(5))) func setupMakesWhatIsMissingOnceAndRefusesAnotherPartitionCount() async throws {
        let scratch = try Scratch()
        guard let servers = try await NATSTestServers.start(1, in: scratch) else { return }
        defer { servers.stopAll() }
        let first = try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "8"])
        #expect(first.status == 0, "\(first.errorOutput)")
        #expect(first.output.contains("stream JOBS: jobs.*.*, 1 replica, 8 partitions, 0 jobs (created)"), "\(first.output)")
        #expect(first.output.contains("stream RESULTS: results.>, 1 replica, 0 results (created)"), "\(first.output)")
        #expect(first.output.contains("bucket batchman-leases: 1 replica, 0 hosts announced, 0 of 8 partitions leased (created)"), "\(first.output)")
        let again = try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "8"])
        #expect(again.status == 0)
        #expect(again.output.components(separatedBy: "(exists)").count == 4 && !again.output.contains("created"), "\(again.output)")
        let other = try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "4"])
        #expect(other.status == 78)
        #expect(other.errorOutput.contains("prefix jobs already has 8 partitions; --partitions 4 would move keys"), "\(other.errorOutput)")
        let nobody = try await run(Products.batchman, ["nats", "setup", "--server", "nats://127.0.0.1:\(try NATSTestServers.freePort())", "--partitions", "8"])
        #expect(nobody.status == 69)
        #expect(nobody.errorOutput.contains("cannot connect to NATS") && nobody.errorOutput.contains("Connection refused"), "\(nobody.errorOutput)")
        let unset = try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--prefix", "orders"], input: "")
        #expect(unset.status == 78)
        #expect(unset.errorOutput.contains("no partition count for prefix orders"), "\(unset.errorOutput)")
    }

    /// Each job lands on `jobs.<FNV-1a-32(token) mod N>.<token>` (the partition a server mapping
    /// computes, checked against the server's own), once however often it is published.
    @Test(.timeLimit(.minutes(5))) func publishStoresEachJobOnceOnItsKeysPartition() async throws {
        let scratch = try Scratch()
        let mapping = #"mappings = { "map.*": "map.{{partition(8,1)}}.{{wildcard(1)}}" }"#
        guard let servers = try await NATSTestServers.start(1, in: scratch, extraConfig: mapping) else { return }
        defer { servers.stopAll() }
        #expect(try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "8"]).status == 0)
        let keys = ["logger", "eu.orders", "a b", "clé", "k%", "wild*card", "gt>"] + (0..<40).map { "key-\($0)" }
        var lines = ScaleOutSupport.jobs(300, keys: keys)
        lines.insert("not a job", at: 150)
        let input = try scratch.write("jobs.ndjson", lines.joined(separator: "\n") + "\n")
        let published = try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--input", input])
        #expect(published.status == 65, "\(published.errorOutput)")
        #expect(published.errorOutput.contains("nats publish: line 151: "), "\(published.errorOutput)")
        #expect(published.errorOutput.contains("300 jobs stored in JOBS (8 partitions; 0 were there already"), "\(published.errorOutput)")
        let again = try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--input", input])
        #expect(again.errorOutput.contains("300 jobs stored in JOBS (8 partitions; 300 were there already"), "\(again.errorOutput)")

        let connection = try await servers.connect()
        defer { connection.close() }
        let stored = try await StreamReader.readAll("JOBS", connection: connection)
        #expect(stored.count == 300)
        for message in stored {
            let key = message.json["key"] as? String ?? "?"
            let token = SubjectToken.encode(key)
            #expect(message.subject == "jobs.\(SubjectToken.partition(ofKey: key, partitions: 8)).\(token)")
        }
        // The server's own partition of each token, through its mapping.
        _ = try await offThePool { try JetStream(connection).addStream(JetStream.StreamConfig(name: "MAP", subjects: ["map.*.*"], replicas: 1)) }
        for key in keys { connection.publish("map.\(SubjectToken.encode(key))", payload: Array("x".utf8)) }
        try await offThePool { try connection.flush() }
        #expect(try await ScaleOutSupport.waitForMessages("MAP", count: keys.count, connection: connection) == keys.count)
        let mapped = try await StreamReader.readAll("MAP", connection: connection)
        for message in mapped {
            let parts = message.subject.split(separator: ".")
            let key = SubjectToken.decode(String(parts[2]))
            #expect(key != nil)
            #expect(Int(parts[1]) == key.map { SubjectToken.partition(ofKey: $0, partitions: 8) }, "\(message.subject)")
        }
    }

    /// User and password (in the URL, or from the environment) and tokens, against a server
    /// that asks for them; a refusal says what to give.
    @Test(.timeLimit(.minutes(5))) func credentialsFromTheURLOrTheEnvironment() async throws {
        let scratch = try Scratch()
        guard let servers = try await NATSTestServers.start(1, in: scratch, extraConfig: "authorization { user: alice, password: s3cret }") else { return }
        defer { servers.stopAll() }
        let port = servers.nodes[0].clientPort
        let refused = try await run(Products.batchman, ["nats", "setup", "--server", "nats://127.0.0.1:\(port)", "--partitions", "2"])
        #expect(refused.status == 69)
        #expect(refused.errorOutput.contains("refused the credentials: Authorization Violation (give user:password@ or token@ in the URL)"),
                "\(refused.errorOutput)")
        let inURL = try await run(Products.batchman, ["nats", "setup", "--server", "nats://alice:s3cret@127.0.0.1:\(port)", "--partitions", "2"])
        #expect(inURL.status == 0, "\(inURL.errorOutput)")
        let fromEnvironment = try await run("/usr/bin/env", ["BATCHMAN_NATS_USER=alice", "BATCHMAN_NATS_PASSWORD=s3cret", Products.batchman, "nats", "setup",
                                                             "--server", "nats://127.0.0.1:\(port)", "--partitions", "2"])
        #expect(fromEnvironment.status == 0 && fromEnvironment.output.contains("(exists)"), "\(fromEnvironment.errorOutput)")

        let tokenScratch = try Scratch()
        guard let tokenServer = try await NATSTestServers.start(1, in: tokenScratch, extraConfig: "authorization { token: tok123 }") else { return }
        defer { tokenServer.stopAll() }
        let tokenPort = tokenServer.nodes[0].clientPort
        #expect(try await run(Products.batchman, ["nats", "setup", "--server", "nats://tok123@127.0.0.1:\(tokenPort)", "--partitions", "2"]).status == 0)
        #expect(try await run(Products.batchman, ["nats", "setup", "--server", "nats://wrong@127.0.0.1:\(tokenPort)", "--partitions", "2"]).status == 69)
    }

    @Test func parsesTheScaleOutOptions() throws {
        guard case .run(let options) = try HostCommand.parse(["run", "m.json", "--nats", "nats://127.0.0.1:4222,nats://127.0.0.1:4223",
                                                              "--partitions", "0,3,5-7", "--name", "alpha", "--lease-seconds", "5"]) else {
            Issue.record("not a run")
            return
        }
        #expect(options.nats?.servers.count == 2)
        #expect(options.nats?.partitions == .list([0, 3, 5, 6, 7]))
        #expect(options.nats?.name == "alpha")
        #expect(options.nats?.leaseSeconds == 5)
        #expect(throws: HostError.self) { try HostCommand.parse(["run", "--partitions", "auto"]) }  // without --nats
        #expect(throws: HostError.self) { try HostCommand.parse(["run", "--nats", "nats://127.0.0.1:1", "--spool", "d"]) }
        #expect(throws: HostError.self) { try HostCommand.parse(["run", "--nats", "nats://127.0.0.1:1", "--partitions", "3-1"]) }
        #expect(throws: HostError.self) { try HostCommand.parse(["run", "--nats", "tls://127.0.0.1:1"]) }
        guard case .natsSetup(let setup) = try HostCommand.parse(["nats", "setup", "--server", "nats://127.0.0.1:4222", "--partitions", "16",
                                                                  "--replicas", "3"]) else {
            Issue.record("not a setup")
            return
        }
        #expect(setup.partitions == 16 && setup.replicas == 3 && setup.prefix == "jobs")
        #expect(throws: HostError.self) { try HostCommand.parse(["nats", "setup", "--server", "nats://127.0.0.1:4222"]) }
        #expect(throws: HostError.self) { try HostCommand.parse(["nats", "publish"]) }
    }
}
