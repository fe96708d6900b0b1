import BatchmanNATS
import Foundation
import Glibc

/// H6: one host consuming a single-node JetStream on loopback (one partition, EchoPlugin,
/// 1000-job fetches), next to the ceiling: the same server's fetch, publish-with-ack and ack
/// loop, driven by this benchmark with the same client, in the same run.
enum NATSWorkload {
    static let server = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    struct Figures {
        var ceiling: [Double] = []
        var hosts: [(String, [Double])] = []
    }

    static func measure(jobs: Int, keys: Int, runs: Int) throws -> Figures? {
        guard let server else { return nil }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("batchman-bench-h6-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = 20_000 + Int(getpid() % 20_000)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = ["-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", folder.appendingPathComponent("store").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let url = "nats://127.0.0.1:\(port)"
        let batchman = HostWorkloads.products.appendingPathComponent("batchman").path
        var connection: NATSConnection?
        for _ in 0..<100 where connection == nil {
            connection = try? NATSConnection.connect(NATSConnection.Options(servers: [try NATSServerURL.parse(url)]))
            if connection == nil { usleep(100_000) }
        }
        guard let connection else { throw CocoaError(.fileReadUnknown) }
        defer { connection.close() }
        let jetStream = JetStream(connection, timeout: .seconds(10))
        precondition(runChild(batchman, ["nats", "setup", "--server", url, "--partitions", "1"]).status == 0)
        let input = try HostWorkloads.makeInput(lines: jobs, keys: keys, name: "nats.ndjson", in: folder).path
        precondition(runChild(batchman, ["nats", "publish", "--server", url, "--input", input]).status == 0)
        _ = try jetStream.addStream(JetStream.StreamConfig(name: "CEILING", subjects: ["ceiling.>"], replicas: 1))

        var figures = Figures()
        for run in 0..<runs { figures.ceiling.append(try ceiling(jetStream, jobs: jobs, run: run)) }
        for (name, maxInFlight) in [("host, maxInFlight 1 (results in order)", 1), ("host, maxInFlight 4", 4)] {
            let manifest = folder.appendingPathComponent("nats-\(maxInFlight).json").path
            try #"{"defaults": {"frequency": 10, "maxBatchSize": 1000, "maxInFlight": \#(maxInFlight)}, "keys": {"default": {"plugin": "\#(HostWorkloads.plugin("EchoPlugin"))"}}}"#
                .write(toFile: manifest, atomically: true, encoding: .utf8)
            var rates: [Double] = []
            for _ in 0..<runs { rates.append(try host(batchman, manifest: manifest, url: url, jetStream: jetStream, jobs: jobs)) }
            figures.hosts.append((name, rates))
        }
        return figures
    }

    /// The ceiling: fetch 1000, publish each as a result and wait for every acknowledgement,
    /// acknowledge the 1000; jobs per second.
    static func ceiling(_ jetStream: JetStream, jobs: Int, run: Int) throws -> Double {
        let connection = jetStream.connection
        let name = "ceiling-\(run)"
        var config = JetStream.ConsumerConfig(durable: name, filter: "jobs.0.*")
        config.max_ack_pending = 4000
        _ = try jetStream.addConsumer(stream: "JOBS", config)
        let publisher = JetStreamPublisher(jetStream)
        defer { publisher.close() }
        let batch = Batch()
        let reply = "\(connection.inboxPrefix)ceiling.\(run)"
        let sid = connection.subscribe(reply) { message in
            if message.status == nil { batch.add(message) } else { batch.ended() }
        }
        defer { connection.unsubscribe(sid) }
        let start = Date()
        var done = 0
        while done < jobs {
            batch.reset()
            jetStream.pull(stream: "JOBS", consumer: name, batch: min(1000, jobs - done), expires: .seconds(2), replyTo: reply)
            let messages = batch.wait(for: min(1000, jobs - done))
            let stored = DispatchGroup()
            for message in messages {
                stored.enter()
                let token = message.subject.split(separator: ".").last.map(String.init) ?? "k"
                publisher.publish("ceiling.0.\(token)", msgId: "\(run)/\(message.replyTo ?? "")", payload: message.payload) { _ in stored.leave() }
            }
            stored.wait()
            for message in messages { if let replyTo = message.replyTo { jetStream.acknowledge(replyTo) } }
            done += messages.count
        }
        let seconds = Date().timeIntervalSince(start)
        try jetStream.deleteConsumer(stream: "JOBS", name: name)
        return Double(jobs) / seconds
    }

    /// The host: from its first stored result to its last (its start-up, the lease and the
    /// consumer's making, is not the steady state H6 measures); jobs per second.
    static func host(_ batchman: String, manifest: String, url: String, jetStream: JetStream, jobs: Int) throws -> Double {
        // A fresh start: no consumer (the host reads from the stream's first job), no results
        // and no memory of their ids.
        for consumer in try jetStream.consumers(stream: "JOBS") { try jetStream.deleteConsumer(stream: "JOBS", name: consumer.name) }
        try jetStream.api("$JS.API.STREAM.DELETE.RESULTS")
        _ = try jetStream.addStream(JetStream.StreamConfig(name: "RESULTS", subjects: ["results.>"], replicas: 1))
        let child = Process()
        child.executableURL = URL(fileURLWithPath: batchman)
        child.arguments = ["run", manifest, "--nats", url, "--partitions", "0", "--fetch-batch", "1000", "--name", "bench", "--lease-seconds", "5"]
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        defer {
            child.interrupt()
            child.waitUntilExit()
        }
        var first: Date?
        while true {
            let stored = try jetStream.streamInfo("RESULTS")?.state.messages ?? 0
            if stored > 0, first == nil { first = Date() }
            if stored >= UInt64(jobs) { break }
            usleep(5_000)
        }
        return Double(jobs) / Date().timeIntervalSince(first!)
    }

    /// One pull request's messages, waited for.
    private final class Batch: @unchecked Sendable {
        private let condition = NSCondition()
        private var messages: [NATSMessage] = []
        private var isOver = false
        func reset() { condition.withLock { messages = []; isOver = false } }
        func add(_ message: NATSMessage) { condition.withLock { messages.append(message); condition.broadcast() } }
        func ended() { condition.withLock { isOver = true; condition.broadcast() } }
        func wait(for count: Int) -> [NATSMessage] {
            condition.withLock {
                while messages.count < count, !isOver { condition.wait() }
                return messages
            }
        }
    }
}
