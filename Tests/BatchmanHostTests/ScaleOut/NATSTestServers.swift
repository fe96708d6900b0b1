import BatchmanNATS
import Foundation
import Glibc
import Testing

/// Real `nats-server` processes (Debian's, with JetStream) on loopback for the scale-out
/// tests: one node, or a 3-node cluster; random ports, store folders in the test's scratch,
/// every process killed when the test ends. Without nats-server a test is skipped, unless CI
/// is set (CI installs it).
final class NATSTestServers: @unchecked Sendable {
    // @unchecked: the nodes' processes are started and stopped by the test's own task.
    struct Node {
        let name: String
        let clientPort: UInt16
        var process: Process
        /// How it was started, to start it again.
        let arguments: [String]
        var url: String { "nats://127.0.0.1:\(clientPort)" }
    }

    private(set) var nodes: [Node] = []

    static let executable = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The servers, or nil (skipped) when nats-server is not installed outside CI. Always at
    /// normal priority: starved (nice 19 on two busy cores), nats-server 2.9.10 drops routes and
    /// leaves streams without a leader, which no host test is about.
    static func start(_ count: Int, in scratch: Scratch, extraConfig: String = "") async throws -> NATSTestServers? {
        try #require(executable != nil || ProcessInfo.processInfo.environment["CI"] == nil, "CI installs Debian's nats-server")
        guard let executable else { return nil }
        let servers = NATSTestServers()
        let clientPorts = try (0..<count).map { _ in try freePort() }
        let clusterPorts = try (0..<count).map { _ in try freePort() }
        for index in 0..<count {
            let name = "n\(index + 1)"
            let routes = clusterPorts.enumerated().filter { $0.offset != index }.map { "nats-route://127.0.0.1:\($0.element)" }
            let cluster = count == 1 ? "" : """
                cluster {
                  name: batchman-test
                  listen: 127.0.0.1:\(clusterPorts[index])
                  routes: [\(routes.joined(separator: ", "))]
                }
                """
            let config = try scratch.write("\(name).conf", """
                server_name: \(name)
                listen: 127.0.0.1:\(clientPorts[index])
                jetstream { store_dir: "\(scratch.path("store-\(name)"))", max_memory_store: 64MB, max_file_store: 2GB }
                \(cluster)
                \(extraConfig)
                """)
            let arguments = ["-c", config, "-l", scratch.path("\(name).log")]
            let process = try Self.launch(executable, arguments)
            servers.nodes.append(Node(name: name, clientPort: clientPorts[index], process: process, arguments: arguments))
        }
        try await servers.waitForJetStream()
        return servers
    }

    deinit { stopAll() }

    var urls: String { nodes.map(\.url).joined(separator: ",") }

    func stopAll() {
        for node in nodes where node.process.isRunning {
            Glibc.kill(node.process.processIdentifier, SIGKILL)
            node.process.waitUntilExit()
        }
    }

    /// Kills a node with SIGKILL, as a machine that dies.
    func kill(node index: Int) {
        let process = nodes[index].process
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Starts a killed node again, on its own store (as a machine that comes back).
    func restart(node index: Int) throws {
        nodes[index].process = try Self.launch(try #require(Self.executable), nodes[index].arguments)
    }

    private static func launch(_ launcher: String, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: launcher)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// A client of the cluster, for the test's own reading and writing.
    func connect() async throws -> NATSConnection {
        let servers = try NATSServerURL.parseList(urls)
        return try await offThePool { try NATSConnection.connect(NATSConnection.Options(servers: servers)) }
    }

    /// Every node answers, and JetStream has a leader (the API answers), within 60 s.
    private func waitForJetStream() async throws {
        let servers = try NATSServerURL.parseList(urls)
        try await offThePool {
            var lastError = "no attempt"
            for _ in 0..<240 {
                // A server that asks for credentials is up (a single node: its JetStream is too).
                if case .failure(.authorization) = Result(catching: { () throws(NATSError) in try NATSConnection.connect(NATSConnection.Options(servers: servers)) }) {
                    return
                }
                if let connection = try? NATSConnection.connect(NATSConnection.Options(servers: servers)) {
                    defer { connection.close() }
                    do {
                        _ = try JetStream(connection, timeout: .seconds(1)).api("$JS.API.INFO")
                        return
                    } catch {
                        lastError = "\(error)"
                    }
                }
                usleep(250_000)
            }
            throw ServerFailure(description: "JetStream did not become ready: \(lastError)")
        }
    }

    struct ServerFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// A port nobody listens on now (bound, read and released).
    static func freePort() throws -> UInt16 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        guard bound else { throw ServerFailure(description: "cannot find a free port: \(String(cString: strerror(errno)))") }
        return UInt16(bigEndian: address.sin_port)
    }
}

/// Every message of a stream, read back by a pull consumer of the test's own.
enum StreamReader {
    struct Stored: Sendable {
        var subject: String
        var payload: [UInt8]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] ?? [:] }
    }

    static func readAll(_ stream: String, filter: String? = nil, connection: NATSConnection) async throws -> [Stored] {
        try await offThePool {
            let jetStream = JetStream(connection, timeout: .seconds(10))
            let name = "reader-\(UInt32.random(in: 0...UInt32.max))"
            var config = JetStream.ConsumerConfig(durable: name, filter: filter)
            config.ack_policy = "none"
            config.max_ack_pending = -1
            let info = try jetStream.addConsumer(stream: stream, config)
            defer { _ = try? jetStream.deleteConsumer(stream: stream, name: name) }
            let total = Int(info.num_pending)
            let received = Received()
            let reply = "\(connection.inboxPrefix)reader.\(name)"
            let sid = connection.subscribe(reply) { message in
                if message.status == nil { received.add(Stored(subject: message.subject, payload: message.payload)) } else { received.endPull() }
            }
            defer { connection.unsubscribe(sid) }
            var rounds = 0
            while received.count < total, rounds < 2000 {
                rounds += 1
                let before = received.pullsEnded
                let batch = min(2000, total - received.count)
                jetStream.pull(stream: stream, consumer: name, batch: batch, expires: .milliseconds(500), replyTo: reply)
                // The pull ends with its batch delivered or its 408; either way, within a second.
                received.waitForPull(after: before, orCount: received.count + batch)
            }
            return received.all
        }
    }

    private final class Received: @unchecked Sendable {
        private let lock = NSCondition()
        private var stored: [Stored] = []
        private(set) var pullsEnded = 0
        var count: Int { lock.withLock { stored.count } }
        var all: [Stored] { lock.withLock { stored } }
        func add(_ message: Stored) { lock.withLock { stored.append(message); lock.broadcast() } }
        func endPull() { lock.withLock { pullsEnded += 1; lock.broadcast() } }
        func waitForPull(after before: Int, orCount target: Int) {
            lock.withLock {
                let deadline = Date().addingTimeInterval(2)
                while pullsEnded == before, stored.count < target, lock.wait(until: deadline) {}
            }
        }
    }
}
