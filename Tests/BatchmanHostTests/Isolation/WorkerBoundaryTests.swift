import BatchmanTesting
import CBatchmanSystem
import Foundation
import Testing

/// The worker boundary is a wall: nothing an isolated plugin writes, and no way its worker
/// dies, crashes, hangs or bloats the host. Real worker processes, real plugins that do it.
@Suite(.timeLimit(.minutes(5)))
struct WorkerBoundaryTests {
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    func manifest(_ scratch: Scratch, config: String, settings: String = "", defaults: String = #"{"frequency": 60000, "maxBatchSize": 4}"#) throws -> String {
        try HostIsolationTests().isolatedManifest(scratch, config: config, settings: settings, defaults: defaults)
    }

    /// Runs `count` jobs for key k through `manifest` to the end of input, and returns the exit
    /// status, the results and the host (its log).
    func runJobs(_ manifest: String, count: Int, extra: [String] = []) async throws -> (status: Int32, results: [ResultLine], host: HostProcess) {
        let host = try HostProcess(["run", manifest, "--stats-per-key"] + extra)
        host.send((1...count).map { HostRunTests.job("k", "\($0)") })
        let (status, results) = try await host.finish()
        return (status, results, host)
    }

    static func statistic(_ name: String, in host: HostProcess) -> Int? {
        let perKey = host.stderr.elements.first { $0.contains(#"stats: key "k""#) } ?? ""
        return perKey.split(separator: " ").first { $0.hasPrefix("\(name)=") }.flatMap { Int($0.dropFirst(name.count + 1)) }
    }

    // MARK: - What a plugin writes

    @Test(arguments: ["done_short", "done_extra", "huge"])
    func aForgedFrameOnTheWorkersSocketCostsItsBatchARetryNotTheHost(kind: String) async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: #"{"forge": "\#(kind)", "once_file": "\#(scratch.path("forged"))"}"#)

        let (status, results, host) = try await runJobs(manifest, count: 4)

        #expect(status == 0)
        #expect(results.count == 4)
        #expect(results.allSatisfy { $0.status == "completed" }, "the batch went to a fresh worker: \(results.map(\.text))")
        #expect(host.stderr.elements.contains { $0.contains("crashed (killed by the host: it sent a frame") }, "\(host.stderr.elements)")
        #expect(Self.statistic("crashes", in: host) == 1)
    }

    @Test func aPublishedOutcomeLogLengthCannotMakeTheHostAllocateIt() async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: #"{"forge_log_mb": 256, "once_file": "\#(scratch.path("forged"))"}"#)

        let (status, results, host) = try await runJobs(manifest, count: 4)

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.map(\.text))")
        #expect(host.stderr.elements.contains { $0.contains("more than the batch may hold (maxResultBytes 67108864)") }, "\(host.stderr.elements)")
        let summary = try #require(host.stderr.elements.first { $0.contains("stats: accepted=") })
        let peak = try #require(Double(summary.split(separator: "peakRSS=").last!.dropLast(3)))
        #expect(peak < 128, "256 MiB published, none of it read: \(summary)")
    }

    @Test func outcomesPublishedPastTheBatchsJobsAreNotRead() async throws {
        let scratch = try Scratch()
        // 32 MiB is within the budget: the four real records are read, and the fifth is refused.
        let manifest = try manifest(scratch, config: #"{"forge_log_mb": 32, "once_file": "\#(scratch.path("forged"))"}"#)

        let (status, results, host) = try await runJobs(manifest, count: 4)

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" })
        #expect(host.stderr.elements.contains { $0.contains("it published more outcomes than the batch has jobs (4)") }, "\(host.stderr.elements)")
    }

    @Test func anOutcomePastMaxResultBytesFailsItsJobAndTheOthersStand() async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: "{}", settings: #""maxResultBytes": 64"#)
        let host = try HostProcess(["run", manifest])
        let big = "\"" + String(repeating: "x", count: 100) + "\""
        host.send([HostRunTests.job("k", "small"), HostRunTests.job("k", "big", big)])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.first { $0.id == "small" }?.status == "completed")
        let failed = try #require(results.first { $0.id == "big" })
        #expect(failed.errorMessage == "its outcome of 102 bytes is past the batch's maxResultBytes (64); it was not kept", "\(failed.text)")
    }

    @Test func sharedMemoryCountsAgainstMemoryLimit() async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: #"{"shared_mb": 1024, "once_file": "\#(scratch.path("touched"))"}"#,
                                    settings: #""memoryLimit": 268435456"#)

        let (status, results, host) = try await runJobs(manifest, count: 2)

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" }, "a fresh worker took the batch: \(results.map(\.text))")
        #expect(host.stderr.elements.contains { $0.contains("past its memoryLimit of 256 MiB") }, "\(host.stderr.elements)")
        #expect(Self.statistic("crashes", in: host) == 1)
    }

    // MARK: - How a worker dies

    @Test(arguments: [#""create_exit": 3"#, #""create_crash": 1"#])
    func aWorkerThatDiesWhileStartingIsALoadErrorNamingThePlugin(config: String) async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: "{\(config)}")

        let result = try await run(Products.batchman, ["check", manifest])
        #expect(result.status == 78, "\(result.errorOutput)")
        #expect(result.errorOutput.contains(#"key "default": plugin "\#(Self.testPlugin)""#), "\(result.errorOutput)")
        #expect(result.errorOutput.contains("its worker process exited ("), "\(result.errorOutput)")
        #expect(result.errorOutput.contains("before it was ready"), "\(result.errorOutput)")

        // `run` starts a worker only for a job, and the job fails with the same account.
        let ran = try await run(Products.batchman, ["run", manifest], input: HostRunTests.job("k", "1") + "\n")
        #expect(ran.status == 0, "\(ran.errorOutput)")
        let job = try #require(try await ResultLine.parse(ran.output.split(separator: "\n").map(String.init)).first)
        #expect(job.status == "failed")
        #expect(job.errorMessage?.contains(#"key "k": plugin "\#(Self.testPlugin)""#) == true, "\(job.text)")
        #expect(job.errorMessage?.contains("its worker process exited (") == true, "\(job.text)")
        #expect(job.errorMessage?.contains("before it was ready") == true, "\(job.text)")
    }

    @Test func aWorkerWithTooLittleMemoryToStartIsALoadError() async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: "{}", settings: #""memoryLimit": 1000000"#)

        let result = try await run(Products.batchman, ["check", manifest])

        #expect(result.status == 78, "\(result.errorOutput)")
        #expect(result.errorOutput.contains("its worker process"), "\(result.errorOutput)")
    }

    @Test func aRestartedWorkerThatCannotStartFailsItsBatchAndTheHostGoesOn() async throws {
        let scratch = try Scratch()
        let marker = scratch.path("crashed")
        // Job 2 crashes the first worker (and leaves the marker); every worker after that aborts in create.
        let manifest = try manifest(scratch, config: #"{"crash_id": "2", "once_file": "\#(marker)", "create_abort_file": "\#(marker)"}"#)

        let (status, results, _) = try await runJobs(manifest, count: 4)

        #expect(status == 0)
        #expect(results.count == 4)
        #expect(results.allSatisfy { $0.status == "failed" && $0.errorMessage?.contains("before it was ready") == true }, "\(results.map(\.text))")
    }

    @Test func aClosedStandardErrorDoesNotKillAWorker() async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: #"{"log_on_create": "hello"}"#)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Products.batchman)
        process.arguments = ["run", manifest]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try errors.fileHandleForReading.close()  // `2>&1 | head -1` once head has exited
        try process.run()
        input.fileHandleForWriting.write(Data((1...4).map { HostRunTests.job("k", "\($0)") + "\n" }.joined().utf8))
        try input.fileHandleForWriting.close()
        let lines = try await offThePool {
            let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
            process.waitUntilExit()
            return lines.map(String.init)
        }

        #expect(process.terminationStatus == 0)
        #expect(lines.count == 4)
        #expect(try lines.map(ResultLine.parse).allSatisfy { $0.status == "completed" })
    }

    @Test func aCrashIsSeenAtOnceWhenThePluginsChildKeepsTheWorkersDescriptors() async throws {
        let scratch = try Scratch()
        let childFile = scratch.path("child")
        let manifest = try manifest(scratch, config: #"{"crash_id": "3", "crash_how": "fork_abort", "once_file": "\#(scratch.path("once"))", "child_pid_file": "\#(childFile)"}"#)

        // The child never exits: only watching the worker itself notices the crash.
        let (status, results, host) = try await runJobs(manifest, count: 4)

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.map(\.text))")
        #expect(Self.statistic("crashes", in: host) == 1)
        let child = try #require(Int32(String(decoding: FileManager.default.contents(atPath: childFile) ?? Data(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        await HostIsolationTests.waitUntilGone(child)
    }

    // MARK: - The search for a poison job

    @Test func sixteenJobsThatAllCrashAreFoundInTwentyRunsWithoutBackoff() async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: #"{"crash_id": "*"}"#, defaults: #"{"frequency": 60000, "maxBatchSize": 16}"#)

        let (status, results, host) = try await runJobs(manifest, count: 16)

        #expect(status == 0)
        #expect(results.allSatisfy { $0.errorReason == "crashed" }, "\(results.map(\.text))")
        // The batch, once more, two halves, then sixteen alone: halving all the way was 31.
        #expect(Self.statistic("crashes", in: host) == 20)
    }

    @Test func aCrashAfterEveryJobWasAnsweredCostsOneCrashAndNoEmptyBatch() async throws {
        let scratch = try Scratch()
        let manifest = try manifest(scratch, config: #"{"crash_after_emit": 1}"#)

        let (status, results, host) = try await runJobs(manifest, count: 4)

        #expect(status == 0)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.map(\.text))")
        #expect(Self.statistic("crashes", in: host) == 1)
        #expect(!host.stderr.elements.contains { $0.contains("process_batch called with 0 jobs") }, "\(host.stderr.elements)")
    }

    // MARK: - Reload

    @Test func aHungWorkerOfAReplacedConfigurationIsKilledAtTheReloadTimeout() async throws {
        let scratch = try Scratch()
        let defaults = #"{"frequency": 60000, "maxBatchSize": 1, "reloadTimeout": 300}"#
        _ = try manifest(scratch, config: #"{"crash_id": "stuck", "crash_how": "hang"}"#, settings: #""debug": true"#, defaults: defaults)
        let host = try HostProcess(["run", scratch.path("plugins.json")])
        host.send([HostRunTests.job("k", "stuck")])
        await host.waitForLog(containing: "flushed by size")
        let hung = HostIsolationTests.workers(of: host.hostProcessIdentifier)

        _ = try manifest(scratch, config: "{}", defaults: defaults)
        host.signal(SIGHUP)
        #expect(await host.waitForLog(containing: "reload 1: ok") != nil)
        let result = try #require(try await host.results(count: 1).first)

        #expect(result.errorReason == "shutdown_batch")
        #expect(await host.waitForLog(containing: "killed its worker process") != nil)
        for worker in hung { await HostIsolationTests.waitUntilGone(worker) }
        let (status, _) = try await host.finish()
        #expect(status == 0)
    }

    // MARK: - The plugin's files

    @Test func aWorldWritablePluginFileOrFolderIsLoadedWithAWarning() async throws {
        let scratch = try Scratch()
        let folder = scratch.path("plugins")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let plugin = "\(folder)/libEcho.so"
        try FileManager.default.copyItem(atPath: Products.plugin("EchoPlugin"), toPath: plugin)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(plugin)"}}"#)

        chmod(plugin, 0o777)
        let file = try await run(Products.batchman, ["check", manifest])
        chmod(plugin, 0o755)
        chmod(folder, 0o777)
        let directory = try await run(Products.batchman, ["check", manifest])
        chmod(folder, 0o755)
        let safe = try await run(Products.batchman, ["check", manifest])

        #expect(file.status == 0)
        #expect(file.errorOutput.contains("warning: plugin \"\(plugin)\" (\(plugin)): \(plugin) is writable by every user"), "\(file.errorOutput)")
        #expect(directory.errorOutput.contains("\(folder) is writable by every user"), "\(directory.errorOutput)")
        #expect(!safe.errorOutput.contains("writable by every user"), "\(safe.errorOutput)")
    }
}

/// Descriptors the host opens are its own: none is inherited by a worker it starts later.
@Suite(.timeLimit(.minutes(5)))
struct HostDescriptorTests {
    @Test func everyDescriptorTheHostOpensIsCloseOnExec() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "EchoPlugin"}, "isolated": {"plugin": "EchoPlugin", "isolation": "process"}}"#)
        let input = scratch.path("jobs.ndjson")
        try HostRunTests.job("k", "1").write(toFile: input, atomically: true, encoding: .utf8)
        let inheritedList = scratch.path("inherited")
        let host = try HostProcess(["run", manifest, "--output", scratch.path("results.ndjson"), "--spool", scratch.path("spool")],
                                   listingInheritedDescriptorsIn: inheritedList)
        await host.waitForLog(containing: "reading jobs from standard input")
        let pid = host.hostProcessIdentifier
        // Descriptors the host was started with are not the host's (the test runner's own).
        let inherited = Set(try String(contentsOfFile: inheritedList, encoding: .utf8).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) })

        let folder = "/proc/\(pid)/fd"
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: folder).compactMap(Int32.init).filter { $0 > 2 && !inherited.contains($0) }
        #expect(descriptors.count >= 5, "the output, the spool, the reader's wake-up pipe, a worker's socket: \(descriptors) \(host.stderr.elements)")
        for descriptor in descriptors {
            guard let info = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(descriptor)", encoding: .utf8) else { continue }  // closed meanwhile
            let flags = info.split(separator: "\n").first { $0.hasPrefix("flags:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) } ?? 0
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/\(descriptor)")) ?? "?"
            #expect(flags & 0o2000000 != 0, "descriptor \(descriptor) (\(target)) is inherited by every program the host starts")
        }
        let (status, _) = try await host.finish()
        #expect(status == 0)
    }
}
