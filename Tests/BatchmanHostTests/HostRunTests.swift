import BatchmanTesting
import Foundation
import Testing

/// `batchman run` end to end: the real binary, real plugins, real pipes and signals.
@Suite(.timeLimit(.minutes(3)))
struct HostRunTests {
    static let echo = Products.plugin("EchoPlugin")
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    static func job(_ key: String, _ id: String, _ payload: String = "1") -> String {
        #"{"key":"\#(key)","id":"\#(id)","payload":\#(payload)}"#
    }

    @Test func runsTheDemoWithOneResultPerJob() async throws {
        let host = try HostProcess(["run", "plugins.json"], directory: Products.packageRoot.path)
        let jobs = try String(contentsOf: Products.packageRoot.appendingPathComponent("examples/jobs.ndjson"), encoding: .utf8)
        host.send(jobs.split(separator: "\n").map(String.init))

        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == jobs.split(separator: "\n").count)
        let byJob = Dictionary(results.filter { $0.id != nil && $0.errorReason != "duplicate" }.map { ("\($0.key ?? "")/\($0.id!)", $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byJob["logger/1"]?.resultJSON == "true", "the Swift LogPlugin answers true")
        #expect(byJob["time-sensitive/3"]?.resultJSON == #"{"order":1003}"#)
        #expect(byJob["analytics/a1"]?.resultJSON == byJob["analytics/a2"]?.resultJSON, "SumPlugin answers each job with its batch's aggregate")
        #expect(byJob["analytics/a1"]?.resultJSON.contains(#""sum":20"#) == true)
        #expect(byJob["analytics/a3"]?.errorMessage?.contains("payload has no number") == true)
        #expect(byJob["new-key/1"]?.status == "completed", "an unnamed key uses the default entry")
        #expect(results.contains { $0.errorReason == "duplicate" && $0.id == "1" && $0.key == "logger" })
        #expect(results.filter { $0.errorReason == "invalid_input" }.compactMap(\.line) == [12, 13])
        #expect(host.stderr.elements.contains { $0.contains("Disk almost full") }, "plugin logs go to standard error")
    }

    @Test func flushesAKeyAtItsSizeWhileAnotherWaitsForItsFrequency() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Self.echo)"},
             "logger": {"plugin": "\(Self.echo)", "frequency": 60000},
             "time-sensitive": {"plugin": "\(Self.echo)", "frequency": 60000, "maxBatchSize": 4}}
            """)
        let host = try HostProcess(["run", manifest])

        host.send([Self.job("logger", "L1")] + (1...4).map { Self.job("time-sensitive", "T\($0)") })
        let early = try await host.results(count: 4)

        #expect(early.allSatisfy { $0.key == "time-sensitive" }, "the full batch is written while input is still open")
        #expect(Set(early.compactMap(\.batchId)).count == 1)
        let (status, results) = try await host.finish()
        #expect(status == 0)
        #expect(results.count == 5)
        #expect(results[4].id == "L1", "logger's job waited for its 60 s frequency until input ended")
    }

    @Test func givesEachJobTheRightOutcomeWhenAPluginMisbehaves() async throws {
        let scratch = try Scratch()
        let keys = ["too_few", "duplicate", "shifted", "fail_return", "retry_return", "garbage"]
        let entries = keys.map { #""\#($0)": {"plugin": "\#(Self.testPlugin)", "config": {"mode": "\#($0)"}}"# }
        let manifest = try scratch.manifest("{\"default\": {\"plugin\": \"\(Self.echo)\"}, \(entries.joined(separator: ", "))}",
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 3}"#)
        let host = try HostProcess(["run", manifest])

        host.send(keys.flatMap { key in (0..<3).map { Self.job(key, "\($0)", "\"p\($0)\"") } })
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 18)
        func outcome(_ key: String, _ id: String) -> String {
            guard let line = results.first(where: { $0.key == key && $0.id == id }) else { return "missing" }
            return line.status == "completed" ? "ok \(line.resultJSON)" : "\(line.errorReason ?? "?"): \(line.errorMessage ?? "")"
        }
        #expect(outcome("too_few", "0") == #"ok "p0""#)
        #expect(outcome("too_few", "2") == "error: No result returned for job")
        #expect(outcome("duplicate", "0") == #"ok "first""#, "the second outcome for job 0 was refused")
        #expect(outcome("duplicate", "1") == #"ok "p1""#)
        #expect(outcome("shifted", "0") == "error: No result returned for job")
        #expect(outcome("shifted", "1") == #"ok "p0""#, "each emit lands on the index it names")
        #expect(outcome("shifted", "2") == #"ok "p1""#)
        #expect(outcome("fail_return", "0") == #"ok "p0""#)
        #expect(outcome("fail_return", "1") == "error: backend unavailable")
        #expect(outcome("fail_return", "2") == "error: backend unavailable")
        #expect(outcome("retry_return", "1") == "error: backend busy")
        #expect(results.filter { $0.key == "garbage" }.allSatisfy { $0.resultJSON == #""no\"\\\n��""# },
                "bytes that are not JSON become a valid JSON string")
        #expect(results.allSatisfy { $0.errorMessage?.contains("concurrent") != true })
    }

    @Test func processesKeysInParallelWhileOnePluginCallBlocks() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("unblock")
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Self.echo)"},
             "blocked": {"plugin": "\(Self.testPlugin)", "config": {"wait_file": "\(gate)"}}}
            """, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest, "--workers", "2"])

        host.send([Self.job("blocked", "b1"), Self.job("free", "f1")])
        let first = try await host.results(count: 1)
        #expect(first[0].id == "f1", "a key is not held up by another key's blocked plugin call")

        #expect(FileManager.default.createFile(atPath: gate, contents: nil))
        let (status, results) = try await host.finish()
        #expect(status == 0)
        #expect(results.map(\.id) == ["f1", "b1"])
    }

    @Test func reportsBadLinesWithTheirNumbersAndGoesOn() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#)
        let host = try HostProcess(["run", manifest, "--max-line-bytes", "100"])

        host.send([
            Self.job("k", "1"),
            "{broken",
            "",
            #"{"key":"k","id":7,"payload":1}"#,
            Self.job("k", "long", "\"\(String(repeating: "x", count: 200))\""),
            Self.job("k", "2"),
        ])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        let invalid = results.filter { $0.errorReason == "invalid_input" }
        #expect(invalid.map(\.line) == [2, 4, 5])
        #expect(invalid[0].errorMessage == "line 2: not valid JSON: expected a string at byte 2")
        #expect(invalid[1].errorMessage == "line 4: \"id\" must be a string, got 7")
        #expect(invalid[1].key == "k")
        #expect(invalid[2].errorMessage == "line 5: line is 236 bytes, longer than --max-line-bytes")
        #expect(results.filter { $0.status == "completed" }.map(\.id) == ["1", "2"])
    }

    @Test func drainsEveryLineReadBeforeSIGTERMAndExitsZero() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#, defaults: #"{"frequency": 60000, "maxBatchSize": 10}"#)
        let host = try HostProcess(["run", manifest])

        host.send((1...2000).map { Self.job("k\($0 % 3)", "\($0)") })
        _ = try await host.results(count: 10)
        host.signal(SIGTERM)
        let status = await host.exitStatus()

        #expect(status == 0)
        let stopped = try #require(host.stderr.elements.first { $0.contains("stopped reading after line") })
        let lastLine = try #require(Int(stopped.split(separator: " ").last!))
        let (_, results) = try await host.finish()
        let ids = results.compactMap(\.id).compactMap(Int.init)
        #expect(ids.count == lastLine, "one result per line read, no more")
        #expect(Set(ids) == Set(1...lastLine), "every line read before the signal has its result")
        #expect(results.filter { $0.id != nil }.allSatisfy { $0.status == "completed" })
        // A line the signal caught half-read is reported, not dropped: at most one such result.
        let cutShort = results.filter { $0.id == nil }
        #expect(cutShort.count <= 1)
        #expect(cutShort.allSatisfy {
            $0.errorReason == "invalid_input" && $0.line == lastLine + 1
                && $0.errorMessage == "line \(lastLine + 1): input stopped in the middle of this line; it was not read whole"
        })
    }

    @Test func exitsAtOnceOnASecondSignal() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "debug": true, "config": {"wait_file": "/nonexistent/never"}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try HostProcess(["run", manifest])
        // Logged once signals are blocked and the host is ready for jobs.
        await host.waitForLog(containing: "reading jobs from standard input")

        host.send([Self.job("default", "1")])
        // The batch is in the plugin (which never returns) before the first signal, so the
        // drain cannot finish and only the second signal can end the host.
        await host.waitForLog(containing: "flushed by size")
        host.signal(SIGTERM)
        await host.waitForLog(containing: "received SIGTERM: reading no more input, draining accepted jobs")
        host.signal(SIGTERM)

        #expect(await host.exitStatus() == 128 + SIGTERM)
        #expect(await host.waitForLog(containing: "second signal (SIGTERM): exiting now without draining") != nil)
    }

    @Test func answersOneHundredThousandLinesOverSeveralKeysExactlyOnce() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#, defaults: #"{"frequency": 10, "maxBatchSize": 500}"#)
        let count = 100_000
        let input = (1...count).map { Self.job("key-\($0 % 4)", "\($0)", #"{"n":\#($0)}"#) }.joined(separator: "\n") + "\n"
        let inputFile = try scratch.write("jobs.ndjson", input)
        let outputFile = scratch.path("results.ndjson")

        let result = try await run(Products.batchman, ["run", manifest, "--input", inputFile, "--output", outputFile])

        #expect(result.status == 0, "\(result.errorOutput)")
        let lines = try String(contentsOfFile: outputFile, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == count)
        var seen = Set<String>()
        for line in lines {
            let parsed = try ResultLine.parse(String(line))
            #expect(parsed.status == "completed")
            seen.insert(parsed.id ?? "")
        }
        #expect(seen.count == count, "each id exactly once")
    }
}
