import BatchmanNATS
import BatchmanTesting
import Foundation
import Glibc
import Testing

@testable import BatchmanHost

/// `batchman run --nats` against a real single-node JetStream: results stored before their
/// jobs are acknowledged, leases released on SIGTERM, static partition lists, and a host that
/// pauses past its lease fenced off.
@Suite struct ScaleOutHostTests {
    @Test(.timeLimit(.minutes(3))) func aHostStoresEveryResultThenAcknowledgesAndReleasesOnSIGTERM() async throws {
        let scratch = try Scratch()
        guard let servers = try await NATSTestServers.start(1, in: scratch) else { return }
        defer { servers.stopAll() }
        #expect(try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "4"]).status == 0)
        let keys = (0..<20).map { "key-\($0)" }
        let input = try scratch.write("jobs.ndjson", ScaleOutSupport.jobs(2000, keys: keys).joined(separator: "\n") + "\n")
        #expect(try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--input", input]).status == 0)
        let connection = try await servers.connect()
        defer { connection.close() }
        // A message that is not a job: answered invalid_input, stored and acknowledged too.
        let badPartition = SubjectToken.partition(ofKey: "key-0", partitions: 4)
        connection.publish("jobs.\(badPartition).key-0", payload: Array("not json".utf8))

        let host = try HostProcess(["run", try ScaleOutSupport.manifest(in: scratch), "--nats", servers.urls, "--name", "alpha", "--lease-seconds", "3"])
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: 2001, connection: connection) == 2001)
        host.signal(SIGTERM)
        #expect(await host.exitStatus() == 0)
        let log = host.stderr.elements.joined(separator: "\n")
        #expect(log.contains("taking jobs from JOBS as alpha: a fair share of 4 partitions"), "\(log)")
        for partition in 0..<4 {
            #expect(log.contains("nats: partition \(partition): acquired (lease revision"), "\(log)")
            #expect(log.contains("nats: partition \(partition): drained and released"), "\(log)")
        }
        #expect(log.contains("nats: every partition released; alpha left"))

        let results = try await ScaleOutSupport.results(connection)
        #expect(results.count == 2001)
        #expect(Set(results.map { "\($0.key)/\($0.id)" }).count == 2001)
        for result in results where result.errorReason != "invalid_input" {
            let partition = SubjectToken.partition(ofKey: result.key, partitions: 4)
            #expect(result.host == "alpha" && result.partition == partition && result.status == "completed")
            #expect(result.subject == "results.\(partition).\(result.key)")
        }
        let invalid = results.filter { $0.errorReason == "invalid_input" }
        #expect(invalid.count == 1)
        #expect(invalid.first?.subject == "results.\(badPartition).key-0" && invalid.first?.host == "alpha")
        // Every job acknowledged, every lease released, the host's announcement gone.
        let (consumers, leases, hosts) = try await offThePool { () throws -> ([JetStream.ConsumerInfo], [KeyValueBucket.Entry?], [String]) in
            let jetStream = JetStream(connection)
            let bucket = KeyValueBucket(jetStream: jetStream, name: "batchman-leases")
            return (try jetStream.consumers(stream: "JOBS"), try (0..<4).map { try bucket.get("jobs.partition.\($0)") },
                    try bucket.keys(under: "jobs.host."))
        }
        #expect(consumers.count == 4)
        for consumer in consumers {
            #expect(consumer.num_ack_pending == 0 && consumer.num_pending == 0, "\(consumer.name)")
            // A consumer made when a lease was lost and taken back late in the run (a loaded
            // machine renews late) starts past every job: it delivered nothing, so acked nothing.
            #expect(consumer.ack_floor.stream_seq == consumer.delivered.stream_seq || consumer.delivered.consumer_seq == 0,
                    "\(consumer.name): acked through \(consumer.ack_floor.stream_seq), delivered through \(consumer.delivered.stream_seq)")
        }
        #expect(leases.allSatisfy { $0?.isDeleted ?? true })
        #expect(hosts.isEmpty)
    }

    @Test(.timeLimit(.minutes(3))) func staticListsSplitThePartitionsBetweenHosts() async throws {
        let scratch = try Scratch()
        guard let servers = try await NATSTestServers.start(1, in: scratch) else { return }
        defer { servers.stopAll() }
        #expect(try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "4"]).status == 0)
        let manifest = try ScaleOutSupport.manifest(in: scratch)
        let low = try HostProcess(["run", manifest, "--nats", servers.urls, "--partitions", "0,1", "--name", "low", "--lease-seconds", "3"])
        let high = try HostProcess(["run", manifest, "--nats", servers.urls, "--partitions", "2-3", "--name", "high", "--lease-seconds", "3"])
        let input = try scratch.write("jobs.ndjson", ScaleOutSupport.jobs(1000, keys: (0..<30).map { "k\($0)" }).joined(separator: "\n") + "\n")
        #expect(try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--input", input]).status == 0)
        let connection = try await servers.connect()
        defer { connection.close() }
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: 1000, connection: connection) == 1000)
        for host in [low, high] { host.signal(SIGTERM) }
        #expect(await low.exitStatus() == 0)
        #expect(await high.exitStatus() == 0)
        let results = try await ScaleOutSupport.results(connection)
        #expect(results.count == 1000)
        for result in results { #expect(result.host == (result.partition < 2 ? "low" : "high"), "\(result)") }
        let wrong = try await run(Products.batchman, ["run", manifest, "--nats", servers.urls, "--partitions", "4"])
        #expect(wrong.status == 64)
        #expect(wrong.errorOutput.contains("--partitions 4: the job stream has partitions 0 to 3"), "\(wrong.errorOutput)")
    }

    /// A host stopped (SIGSTOP) past its lease: another takes its partitions over from their
    /// ack floor; the first, resumed, finds its leases lost and stores and acknowledges nothing
    /// more there.
    @Test(.timeLimit(.minutes(3))) func aHostPausedPastItsLeaseIsFencedOffAndItsPartitionsTakenOver() async throws {
        let scratch = try Scratch()
        guard let servers = try await NATSTestServers.start(1, in: scratch) else { return }
        defer { servers.stopAll() }
        #expect(try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "2"]).status == 0)
        let manifest = try ScaleOutSupport.manifest(in: scratch)
        let connection = try await servers.connect()
        defer { connection.close() }
        let keys = (0..<10).map { "k\($0)" }
        let alpha = try HostProcess(["run", manifest, "--nats", servers.urls, "--name", "alpha", "--lease-seconds", "3"])
        for partition in 0..<2 { await alpha.waitForLog(containing: "partition \(partition): acquired") }
        let first = try scratch.write("first.ndjson", ScaleOutSupport.jobs(500, keys: keys).joined(separator: "\n") + "\n")
        #expect(try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--input", first]).status == 0)
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: 500, connection: connection) == 500)

        kill(alpha.hostProcessIdentifier, SIGSTOP)
        let beta = try HostProcess(["run", manifest, "--nats", servers.urls, "--name", "beta", "--lease-seconds", "3"])
        for partition in 0..<2 {
            let line = await beta.waitForLog(containing: "partition \(partition): acquired")
            #expect(line?.contains("taken over from alpha, whose lease expired") == true, "\(line ?? "")")
        }
        let second = (500..<1000).map { #"{"key":"\#(keys[$0 % keys.count])","id":"\#($0)","payload":{"n":\#($0)}}"# }
        let secondFile = try scratch.write("second.ndjson", second.joined(separator: "\n") + "\n")
        #expect(try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--input", secondFile]).status == 0)
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: 1000, connection: connection) == 1000)
        kill(alpha.hostProcessIdentifier, SIGCONT)
        for partition in 0..<2 { await alpha.waitForLog(containing: "partition \(partition): lease lost") }
        for host in [alpha, beta] { host.signal(SIGTERM) }
        #expect(await alpha.exitStatus() == 0)
        #expect(await beta.exitStatus() == 0)
        let results = try await ScaleOutSupport.results(connection)
        #expect(results.count == 1000)
        for result in results where Int(result.id)! >= 500 { #expect(result.host == "beta", "\(result)") }
    }

    /// ABI 1.1: jobs a host fetched and never answered reach the next owner marked as delivered
    /// before (`BM_JOB_REDELIVERED`); jobs published after the takeover are not.
    @Test(.timeLimit(.minutes(3))) func jobsTheLastOwnerFetchedReachTheNextMarkedAsDeliveredBefore() async throws {
        let scratch = try Scratch()
        guard let servers = try await NATSTestServers.start(1, in: scratch) else { return }
        defer { servers.stopAll() }
        #expect(try await run(Products.batchman, ["nats", "setup", "--server", servers.urls, "--partitions", "1"]).status == 0)
        let hints = try await scratch.compilePlugin("hints", source: HostPluginABITests.hintsSource, defines: ["_POSIX_C_SOURCE=200809L"])
        let holding = try scratch.write("holding.json", #"{"defaults": {"frequency": 600000, "maxBatchSize": 1000}, "keys": {"default": {"plugin": "\#(hints)"}}}"#)
        let answering = try scratch.write("answering.json", #"{"defaults": {"frequency": 20, "maxBatchSize": 100}, "keys": {"default": {"plugin": "\#(hints)"}}}"#)
        let connection = try await servers.connect()
        defer { connection.close() }
        func publish(_ ids: Range<Int>) async throws {
            let lines = ids.map { #"{"key":"k\#($0 % 4)","id":"\#($0)","payload":"report"}"# }
            let file = try scratch.write("jobs-\(ids.lowerBound).ndjson", lines.joined(separator: "\n") + "\n")
            #expect(try await run(Products.batchman, ["nats", "publish", "--server", servers.urls, "--input", file]).status == 0)
        }

        let alpha = try HostProcess(["run", holding, "--nats", servers.urls, "--name", "alpha", "--lease-seconds", "3"])
        await alpha.waitForLog(containing: "partition 0: acquired")
        try await publish(0..<20)
        await alpha.waitUntilAccepted(20)  // fetched, held in a window that never flushes
        alpha.signal(SIGKILL)
        _ = await alpha.exitStatus()
        let beta = try HostProcess(["run", answering, "--nats", servers.urls, "--name", "beta", "--lease-seconds", "3"])
        await beta.waitForLog(containing: "partition 0: acquired")
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: 20, connection: connection) == 20)
        try await publish(20..<25)
        #expect(try await ScaleOutSupport.waitForMessages("RESULTS", count: 25, connection: connection) == 25)
        beta.signal(SIGTERM)
        #expect(await beta.exitStatus() == 0)

        let results = try await ScaleOutSupport.results(connection)
        #expect(results.count == 25)
        for result in results {
            #expect(result.redelivered == (Int(result.id)! < 20), "job \(result.id): fetched by alpha before the takeover or not")
        }
    }
}
