import Batchman
@testable import BatchmanHost
import BatchmanTesting
import Foundation
import Testing

/// Standard input and output that misbehave: closed, stalled, gone, or a file shared by runs.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct HostOutputTests {
    static let echo = Products.plugin("EchoPlugin")
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    @Test func treatsAClosedStandardInputAsNoJobsInsteadOfHanging() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#)

        let result = try await run("/bin/sh", ["-c", #"exec "$0" run "$1" <&-"#, Products.batchman, manifest])

        #expect(result.status == 0)
        #expect(result.output.isEmpty)
        #expect(result.errorOutput.contains("standard input was closed: there are no jobs to read"))
    }

    @Test func refusesAClosedStandardOutputRatherThanLoseResults() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#)

        let result = try await run("/bin/sh", ["-c", #"exec "$0" run "$1" >&-"#, Products.batchman, manifest], input: HostRunTests.job("k", "1") + "\n")

        #expect(result.status == 70)
        #expect(result.errorOutput.contains("standard output is closed, so results would be lost"))
    }

    /// A consumer that stops reading stops the host reading, instead of growing its memory.
    @Test func stopsReadingInputWhileTheConsumerIsNotReadingResults() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#, defaults: #"{"frequency": 10, "maxBatchSize": 100}"#)
        let lineCount = 100_000
        let input = scratch.path("jobs.ndjson")
        try (1...lineCount).map { HostRunTests.job("k\($0 % 4)", "\($0)", #"{"padding":"\#(String(repeating: "x", count: 60))"}"#) + "\n" }
            .joined().write(toFile: input, atomically: true, encoding: .utf8)
        let inputSize = try #require(try FileManager.default.attributesOfItem(atPath: input)[.size] as? Int)

        let host = try HostProcess(["run", manifest, "--input", input, "--max-output-bytes", "65536"], readsOutput: false)

        // Nobody reads standard output yet: the host must pause reading.
        #expect(await host.waitForLog(containing: "output is not being read: 65536 bytes of results are waiting; reading input paused") != nil)
        let offset = try readOffset(of: host.hostProcessIdentifier, file: input)
        #expect(offset < inputSize / 2, "read \(offset) of \(inputSize) bytes while its output was not read")

        let unread = try #require(host.unreadOutput)
        let output = try await offThePool { unread.readDataToEndOfFile() }
        #expect(await host.exitStatus() == 0)
        #expect(output.split(separator: UInt8(ascii: "\n")).count == lineCount)
        #expect(await host.waitForLog(containing: "outputPauses=") != nil)
    }

    /// `batchman run ... | head -1`: once output is gone the host stops promptly with 70.
    @Test func stopsReadingFailsPendingJobsAndExits70OnceOutputIsGone() async throws {
        signal(SIGPIPE, SIG_IGN)  // this test writes into a pipe the host will close
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#, defaults: #"{"frequency": 10, "maxBatchSize": 100}"#)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Products.batchman)
        process.arguments = ["run", manifest]
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // The producer's own copy of the pipe's write end, closed only by the producer: with the
        // Pipe's descriptor, the number could be closed under it when the test returns and reused
        // by another test's file, which would then get these lines.
        let writer = dup(stdin.fileHandleForWriting.fileDescriptor)
        try stdin.fileHandleForWriting.close()
        Thread.detachNewThread {
            // An endless producer: it stops only when the host closes its input by exiting.
            var id = 0
            while true {
                let chunk = (0..<1000).map { _ in id += 1; return HostRunTests.job("k", "\(id)") + "\n" }.joined()
                let written = chunk.withCString { Glibc.write(writer, $0, strlen($0)) }
                if written < 0 { break }
            }
            close(writer)
        }
        // Read one line, like `head -1`, then go away.
        let errors = try await offThePool {
            let reader = stdout.fileHandleForReading
            var first = Data()
            while !first.contains(UInt8(ascii: "\n")) { first.append(reader.availableData) }
            try reader.close()
            try stdout.fileHandleForWriting.close()
            process.waitUntilExit()
            return String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
        #expect(process.terminationStatus == 70)
        #expect(errors.contains("writing results failed: Broken pipe"))
        #expect(errors.contains("accepted jobs were failed without an answer"))
    }

    /// The README's restart recipe: a line that SIGTERM caught half-read stays in the file for
    /// the next run, which reads it whole. Two runs share one open file, as `cmd < file` would.
    @Test func windsAFileBackToTheStartOfALineCutBySIGTERM() async throws {
        let scratch = try Scratch()
        let gate = scratch.path("unblock")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.testPlugin)", "debug": true, "maxPending": 1, "config": {"wait_file": "\#(gate)"}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        // 100-byte lines: the first 64 KiB read ends in the middle of line 656.
        let lines = (1...2000).map { number -> String in
            let head = HostRunTests.job("k", "\(number)", #""""#)
            return head.replacingOccurrences(of: #""payload":"""#, with: #""payload":"\#(String(repeating: "p", count: 99 - head.utf8.count))""#)
        }
        #expect(lines.allSatisfy { $0.utf8.count == 99 })
        let input = try scratch.write("jobs.ndjson", lines.map { $0 + "\n" }.joined())
        let shared = try #require(FileHandle(forReadingAtPath: input))

        func runHost(until stop: (HostProcess) async -> Void) async throws -> [ResultLine] {
            let host = try HostProcess(["run", manifest], standardInput: shared)
            await stop(host)
            let status = await host.exitStatus()
            #expect(status == 0, "\(host.stderr.elements)")
            return try await host.finish().results
        }
        // First run: the plugin holds batch 1 and maxPending 1 holds the reader at line 2 of
        // the first chunk, so SIGTERM arrives before a second chunk is read.
        let first = try await runHost { host in
            await host.waitForLog(containing: "batch 1 flushed by size")
            host.signal(SIGTERM)
            await host.waitForLog(containing: "received SIGTERM")
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            #expect(await host.waitForLog(containing: "line 656 was only partly read: input wound back to its start (byte 65500)") != nil)
        }
        let second = try await runHost { _ in }

        #expect(first.count == 655)
        let ids = (first + second).compactMap(\.id).compactMap(Int.init)
        #expect(ids.sorted() == Array(1...2000), "every line answered once, none cut")
        #expect((first + second).allSatisfy { $0.status == "completed" })
    }

    /// The position of `process`'s descriptor for `file`, from /proc.
    func readOffset(of process: Int32, file: String) throws -> Int {
        let folder = "/proc/\(process)/fd"
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            guard (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(folder)/\(name)")) == file else { continue }
            let info = try String(contentsOfFile: "/proc/\(process)/fdinfo/\(name)", encoding: .utf8)
            let line = try #require(info.split(separator: "\n").first { $0.hasPrefix("pos:") })
            return try #require(Int(line.dropFirst(4).trimmingCharacters(in: .whitespaces)))
        }
        throw CocoaError(.fileNoSuchFile)
    }
}

/// `Host.run` as a library call: whatever step fails, what it opened is closed.
@Suite struct HostSessionTests {
    @Test func closesItsInputAndOutputWhenAPluginCannotBeLoaded() async throws {
        let scratch = try Scratch()
        let input = try scratch.write("jobs.ndjson", "")
        let output = scratch.path("results.ndjson")
        var options = RunOptions()
        options.manifestPath = try scratch.manifest(#"{"default": {"plugin": "NoSuchPlugin"}}"#)
        options.inputPath = input
        options.outputPath = output

        let error = await #expect(throws: HostError.self) { try await Host.run(options, logger: .silent) }

        #expect(error?.exitCode == 78)
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")
        }
        #expect(!open.contains(input), "the input file was left open")
        #expect(!open.contains(output), "the output file was left open")
    }
}
