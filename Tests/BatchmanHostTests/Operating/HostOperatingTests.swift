import BatchmanTesting
import Foundation
import Synchronization
import Testing

/// `--http`, systemd notification, `--log-format`, `--progress`: what an operator sees, with
/// real sockets, a real Prometheus where it is installed, and a real pseudo-terminal.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct HostOperatingTests {
    static let echo = Products.plugin("EchoPlugin")
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    static func job(_ key: String, _ id: String, _ payload: String = "1") -> String { HostRunTests.job(key, id, payload) }

    /// Starts a host with `--http 127.0.0.1:0` and returns it with the port it bound.
    func startedHost(_ scratch: Scratch, keys: String? = nil, defaults: String = #"{"frequency": 60000, "maxBatchSize": 5}"#,
                     arguments: [String] = [], environment: [String: String] = [:]) async throws -> (HostProcess, UInt16) {
        let manifest = try scratch.manifest(keys ?? #"{"default": {"plugin": "\#(Self.echo)"}, "named": {"plugin": "\#(Self.echo)"}}"#, defaults: defaults)
        let host = try HostProcess(["run", manifest, "--http", "127.0.0.1:0"] + arguments, environment: environment)
        let line = try #require(await host.waitForLog(containing: "http on 127.0.0.1:"))
        let port = try #require(line.split(separator: "127.0.0.1:").last.flatMap { UInt16($0.prefix { $0.isNumber }) })
        await host.waitForLog(containing: "reading jobs from")  // ready from then on
        return (host, port)
    }

    static func promtool() -> String? {
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func metricsAgreeWithTheResultsWhileRunningAndAfter() async throws {
        let scratch = try Scratch()
        let (host, port) = try await startedHost(scratch)
        // Two keys the manifest does not name fill a batch of five each (the default entry); two
        // jobs wait on "named"; one line is not a job.
        host.send((1...5).flatMap { [Self.job("a", "\($0)"), Self.job("b", "\($0)")] } + [Self.job("named", "a"), Self.job("named", "b"), "not json"])
        _ = try await host.results(count: 11)
        await host.waitUntilAccepted(12)

        let running = try await HTTPGet.request("/metrics", port: port)
        #expect(running.status == 200)
        #expect(running.headers.contains("Content-Type: text/plain; version=0.0.4"))
        let metrics = running.body
        #expect(HTTPGet.sample(metrics, #"batchman_jobs_accepted_total{key="default"}"#) == 10)
        #expect(HTTPGet.sample(metrics, #"batchman_jobs_completed_total{key="default"}"#) == 10)
        #expect(HTTPGet.sample(metrics, #"batchman_jobs_accepted_total{key="named"}"#) == 2)
        #expect(HTTPGet.sample(metrics, #"batchman_jobs_pending{key="named"}"#) == 2, "60 s frequency: still waiting")
        #expect(HTTPGet.sample(metrics, #"batchman_batches_total{key="default",reason="size"}"#) == 2)
        #expect(HTTPGet.sample(metrics, #"batchman_batch_size_count{key="default"}"#) == 2)
        #expect(HTTPGet.sample(metrics, #"batchman_batch_size_sum{key="default"}"#) == 10)
        #expect(HTTPGet.sample(metrics, #"batchman_batch_size_bucket{key="default",le="5"}"#) == 2)
        #expect(HTTPGet.sample(metrics, #"batchman_job_latency_seconds_count{key="default"}"#) == 10)
        #expect(HTTPGet.sample(metrics, #"batchman_batch_duration_seconds_count{key="default"}"#) == 2)
        #expect(HTTPGet.sample(metrics, #"batchman_jobs_failed_total{reason="invalid_input"}"#) == 1)
        #expect(HTTPGet.sample(metrics, #"batchman_build_info{version="0.1.0",abi="1"}"#) == 1)
        #expect(!metrics.contains(#"key="a""#), "a key the manifest does not name is counted under the entry that serves it")
        if let promtool = Self.promtool() {
            let file = try scratch.write("metrics.txt", metrics)
            let checked = try await run("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"])
            #expect(checked.status == 0, "promtool: \(checked.output)\(checked.errorOutput)")
        }

        // The statistics line at the end and a scrape just before it agree.
        let (status, _) = try await host.finish()
        #expect(status == 0)
        #expect(host.stderr.elements.contains { $0.contains("stats: accepted=12 completed=12 failed=1 (invalid_input=1)") })
    }

    @Test func batchDurationIsThePluginCallNotTheWaitForAWorkerThread() async throws {
        let scratch = try Scratch()
        let keys = #"{"slow": {"plugin": "\#(Self.testPlugin)", "config": {"sleep_ms": 1000}}, "fast": {"plugin": "\#(Self.testPlugin)"}}"#
        // One worker thread: the fast key's batch waits a second behind the slow one's call.
        let (host, port) = try await startedHost(scratch, keys: keys, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#, arguments: ["--workers", "1"])
        host.send([Self.job("slow", "1"), Self.job("fast", "1")])
        _ = try await host.results(count: 2)

        let metrics = try await HTTPGet.request("/metrics", port: port).body
        let slow = try #require(HTTPGet.sample(metrics, #"batchman_batch_duration_seconds_sum{key="slow"}"#))
        let fast = try #require(HTTPGet.sample(metrics, #"batchman_batch_duration_seconds_sum{key="fast"}"#))
        #expect(slow >= 1, "the call slept a second")
        #expect(fast < 0.5, "the fast call is quick; the second it waited for the worker thread is not its: \(fast)")
        let (status, _) = try await host.finish()
        #expect(status == 0)
    }

    @Test func answersHealthReadyAndErrorsAndSays503WhileDraining() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("release")
        let keys = #"{"default": {"plugin": "\#(Self.testPlugin)", "config": {"wait_file": "\#(gate)"}}}"#
        let (host, port) = try await startedHost(scratch, keys: keys)
        #expect(try await HTTPGet.request("/health", port: port).status == 200)
        #expect(try await HTTPGet.request("/ready", port: port).status == 200)
        #expect(try await HTTPGet.request("/nowhere", port: port).status == 404)
        let post = try await HTTPGet.request("/metrics", port: port, method: "POST")
        #expect(post.status == 405)
        #expect(post.headers.contains("Allow: GET, HEAD"))
        #expect(try await HTTPGet.request("", port: port, raw: "NOT HTTP\r\n\r\n").status == 400)
        #expect(try await HTTPGet.request("", port: port, raw: "GET /" + String(repeating: "x", count: 9000) + " HTTP/1.1\r\n\r\n").status == 431)

        host.send([Self.job("k", "1")])
        await host.waitUntilAccepted(1)
        host.signal(SIGTERM)
        await host.waitForLog(containing: "received SIGTERM")
        // The job's batch waits for its file: the drain goes on until the test lets it finish.
        #expect(try await HTTPGet.request("/health", port: port).status == 503)
        let ready = try await HTTPGet.request("/ready", port: port)
        #expect(ready.status == 503)
        #expect(ready.body == "draining\n")
        #expect(FileManager.default.createFile(atPath: gate, contents: nil))

        #expect(await host.exitStatus() == 0)
        #expect(try await host.wholeResults().map(\.status) == ["completed"])
    }

    @Test func tellsSystemdItIsReadyReloadingStoppingAndAlive() async throws {
        let scratch = try Scratch()
        let path = scratch.path("notify.sock")
        let listener = try NotifyListener(path: path)
        let (host, _) = try await startedHost(scratch, environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"])

        let ready = try #require(await listener.next { $0.contains("READY=1") })
        #expect(ready.contains("STATUS="))
        #expect(await listener.next { $0 == "WATCHDOG=1" } != nil, "every 100 ms: half of WATCHDOG_USEC")
        host.signal(SIGHUP)
        #expect(await listener.next { $0.hasPrefix("RELOADING=1") } != nil)
        #expect(await listener.next { $0 == "READY=1" } != nil, "ready again once the reload is done")
        host.send([Self.job("k", "1")])
        host.signal(SIGUSR1)
        #expect(await listener.next { $0.hasPrefix("STATUS=stats: accepted=") } != nil)
        host.closeInput()
        #expect(await listener.next { $0 == "STOPPING=1" } != nil)
        #expect(await host.exitStatus() == 0)
    }

    @Test func theExampleUnitFilePassesSystemdAnalyzeVerify() async throws {
        let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }
        try #require(analyze != nil || ProcessInfo.processInfo.environment["CI"] == nil, "CI installs systemd's systemd-analyze")
        guard let analyze else { return }
        let scratch = try Scratch()
        let unit = try String(contentsOf: Products.packageRoot.appendingPathComponent("examples/batchman.service"), encoding: .utf8)
        #expect(unit.contains("Type=notify"))
        #expect(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))
        #expect(unit.contains("KillSignal=SIGTERM"))
        #expect(unit.contains("TimeoutStopSec="))
        // verify needs the executable to exist: the built one stands in for the installed one.
        let file = try scratch.write("batchman.service", unit.replacing("/usr/local/bin/batchman", with: Products.batchman))
        let verified = try await run(analyze, ["verify", file])
        #expect(verified.status == 0, "\(verified.output)\(verified.errorOutput)")
    }

    @Test func writesJSONLogLinesWithTheirKeyPluginAndReload() async throws {
        let scratch = try Scratch()
        let log = Products.plugin("LogPlugin")
        let manifest = try scratch.manifest(#"{"logger": {"plugin": "\#(log)"}, "default": {"plugin": "\#(Self.echo)"}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--log-format", "json"])
        await host.waitForLog(containing: "reading jobs from")
        host.send([HostRunTests.job("logger", "1", #"{"message":"hello","type":"info"}"#)])
        _ = try await host.results(count: 1)
        host.signal(SIGHUP)
        await host.waitForLog(containing: "reload 1: ok")
        let (status, _) = try await host.finish()

        #expect(status == 0)
        let lines = host.stderr.elements.filter { $0 != HostProcess.endOfOutput }
        let objects = try lines.map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "not JSON: \($0)") }
        #expect(objects.allSatisfy { ($0["time"] as? String)?.hasSuffix("Z") == true && $0["level"] != nil && $0["message"] != nil })
        let time = try #require(objects.first?["time"] as? String)
        #expect(time.count == 24, "RFC 3339 with milliseconds: \(time)")
        let pluginLine = try #require(objects.first { ($0["message"] as? String)?.contains("hello") == true })
        #expect(pluginLine["key"] as? String == "logger")
        #expect(pluginLine["plugin"] as? String == "log")
        #expect(objects.contains { $0["reload"] as? Int == 1 && ($0["message"] as? String)?.hasPrefix("reload 1: ok") == true })
    }

    @Test func prefixesTextLogLinesWithTheTimeWhenAsked() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#)
        let result = try await run(Products.batchman, ["run", manifest, "--log-timestamps"], input: Self.job("k", "1"))
        #expect(result.status == 0)
        let first = try #require(result.errorOutput.split(separator: "\n").first)
        #expect(first.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z batchman: info: "#, options: .regularExpression) != nil, "\(first)")
    }

    @Test func drawsProgressOnATerminalAndNeverInAPipe() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#, defaults: #"{"frequency": 10, "maxBatchSize": 1000}"#)
        let input = try scratch.write("jobs.ndjson", (1...50_000).map { Self.job("k\($0 % 4)", "\($0)") }.joined(separator: "\n") + "\n")
        let output = scratch.path("results.ndjson")
        // `script` runs the host on a pseudo-terminal: standard error is a terminal there.
        let command = "\(Products.batchman) run \(manifest) --input \(input) --output \(output)"
        let onTerminal = try await run("/usr/bin/script", ["-qefc", command, "/dev/null"])
        #expect(onTerminal.status == 0)
        #expect(onTerminal.output.contains("% of "), "the progress line: \(onTerminal.output.suffix(300))")
        #expect(onTerminal.output.contains("lines/s"))
        #expect(onTerminal.output.contains("results"))

        let inPipe = try await run(Products.batchman, ["run", manifest, "--input", input, "--output", output])
        #expect(inPipe.status == 0)
        #expect(!inPipe.errorOutput.contains("lines/s"), "not a terminal: no progress")
    }

    @Test func letsARealPrometheusScrapeTheHost() async throws {
        let prometheus = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].first { FileManager.default.isExecutableFile(atPath: $0) }
        try #require(prometheus != nil || ProcessInfo.processInfo.environment["CI"] == nil, "CI installs Debian's prometheus")
        guard let prometheus else { return }
        let scratch = try Scratch()
        let (host, port) = try await startedHost(scratch)
        host.send((1...5).map { Self.job("k", "\($0)") })
        _ = try await host.results(count: 5)

        let webPort = try Self.freePort()
        let config = try scratch.write("prometheus.yml", """
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: batchman
                static_configs:
                  - targets: ["127.0.0.1:\(port)"]
            """)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: prometheus)
        server.arguments = ["--config.file=\(config)", "--storage.tsdb.path=\(scratch.path("tsdb"))", "--web.listen-address=127.0.0.1:\(webPort)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        // A poll of another server, bounded (a minute at most): Prometheus starts, scrapes every
        // second, and its query API finds the value. There is no event of its to wait for.
        var value: String?
        for _ in 0..<600 where value == nil {
            if let answer = try? await HTTPGet.request("/api/v1/query?query=batchman_jobs_completed_total%7Bkey%3D%22default%22%7D", port: webPort),
               answer.status == 200, answer.body.contains(#""value":["#) {
                value = answer.body.split(separator: #"""#).dropLast().last.map(String.init)
            } else {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(value == "5")
        let (status, _) = try await host.finish()
        #expect(status == 0)
    }

    static func freePort() throws -> UInt16 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
        return UInt16(bigEndian: address.sin_port)
    }
}

/// The datagram socket a test listens on as systemd would (`NOTIFY_SOCKET`).
final class NotifyListener: Sendable {
    let messages = RecordLog<String>()
    private let socket: Int32

    init(path: String) throws {
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0 else { throw TestClient.ConnectFailure(errno: errno) }
        self.socket = socket
        let messages = messages
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(socket, &buffer, buffer.count, 0)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { return }
                messages.append(String(decoding: buffer[..<count], as: UTF8.self))
            }
        }
    }

    deinit { shutdown(socket, Int32(SHUT_RDWR)); close(socket) }

    /// The next message (after those already taken) that `matches`, or nil once the wait is cancelled.
    private let taken = Mutex(0)

    func next(where matches: (String) -> Bool) async -> String? {
        while !Task.isCancelled {
            let seen = taken.withLock { $0 }
            let all = await messages.wait(forCount: seen + 1)
            for (index, message) in all.enumerated().dropFirst(seen) {
                taken.withLock { $0 = index + 1 }
                if matches(message) { return message }
            }
        }
        return nil
    }
}
