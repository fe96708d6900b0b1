import BatchmanTesting
import Foundation
import Testing

/// The spool on a full disk, with a file that changed between runs, and among other users:
/// nothing accepted is lost, and nothing private leaks. Real hosts, a real small filesystem.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SpoolHardeningTests {
    /// A tmpfs of `megabytes`, mounted for the test's life: a disk that really fills up.
    final class SmallFilesystem {
        let path: String

        init(megabytes: Int, in scratch: Scratch) throws {
            path = scratch.path("small")
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let options = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path]
            var mounted = try runBlocking("/bin/mount", options)
            if mounted.status != 0, getuid() != 0 { mounted = try runBlocking("/usr/bin/sudo", ["-n", "/bin/mount"] + options) }
            guard mounted.status == 0 else {
                throw Failure(description: "cannot mount a \(megabytes) MiB tmpfs (this test needs root or sudo): \(mounted.errorOutput)")
            }
        }

        deinit {
            _ = try? runBlocking("/bin/umount", ["-l", path])
            if getuid() != 0 { _ = try? runBlocking("/usr/bin/sudo", ["-n", "/bin/umount", "-l", path]) }
        }

        struct Failure: Error, CustomStringConvertible {
            let description: String
        }
    }

    func input(_ count: Int, first: Int = 0, in scratch: Scratch, name: String = "input.ndjson") throws -> (path: String, ids: Set<String>) {
        var text = ""
        var ids = Set<String>()
        for index in first..<(first + count) {
            text += #"{"key":"k","id":"\#(index)","payload":\#(index)}"# + "\n"
            ids.insert("\(index)")
        }
        return (try scratch.write(name, text), ids)
    }

    func echoManifest(_ scratch: Scratch, config: String = "{}") throws -> String {
        try scratch.manifest(#"{"default": {"plugin": "\#(Products.plugin("BatchmanTestPlugin"))", "config": \#(config)}}"#,
                             defaults: #"{"frequency": 20, "maxBatchSize": 500}"#)
    }

    // MARK: - A full disk

    @Test func aFullDiskPausesReadingSaysSoAndTheLedgerKeepsUp() async throws {
        let scratch = try Scratch()
        let disk = try SmallFilesystem(megabytes: 1, in: scratch)
        let (input, ids) = try input(30_000, in: scratch)  // about 2.3 MB of records: more than the disk
        let manifest = try echoManifest(scratch)
        let spool = "\(disk.path)/spool"

        let first = try HostProcess(["run", manifest, "--input", input, "--spool", spool])
        #expect(await first.exitStatus() == 0, "\(first.stderr.elements.suffix(5))")
        let answered = try await first.wholeResults()
        #expect(Set(answered.compactMap(\.id)) == ids)
        #expect(answered.count == ids.count, "each line once")
        #expect(first.stderr.elements.contains { $0.contains("the disk is full (No space left on device); reading input paused") },
                "\(first.stderr.elements.suffix(5))")

        // The ledger kept up: a second run on the same file has nothing left to answer.
        let second = try HostProcess(["run", manifest, "--input", input, "--spool", spool])
        #expect(await second.exitStatus() == 0)
        #expect(second.stdout.elements.isEmpty, "\(second.stdout.elements.count) lines answered again")
    }

    @Test func aHostKilledOnAFullDiskStartsAgainInPlaceAndReplaysWhatItAccepted() async throws {
        let scratch = try Scratch()
        let disk = try SmallFilesystem(megabytes: 1, in: scratch)
        let unblock = scratch.path("unblock")
        let manifest = try echoManifest(scratch, config: #"{"wait_file": "\#(unblock)"}"#)
        let spool = "\(disk.path)/spool"
        let first = try HostProcess(["run", manifest, "--spool", spool])
        let lines = (0..<30_000).map { #"{"key":"k","id":"\#($0)","payload":\#($0)}"# }
        first.feed(lines)  // the host stops reading: the pipe fills

        #expect(await first.waitForLog(containing: "the disk is full") != nil)
        let seen = first.stderr.elements.count
        first.signal(SIGUSR1)
        let stats = try #require(await first.waitForLog(containing: "stats: accepted=", skipping: seen))
        let accepted = try #require(Int(stats.split(separator: "accepted=")[1].prefix { $0.isNumber }))
        first.signal(SIGKILL)
        _ = await first.exitStatus()
        #expect(accepted > 1_000 && accepted < 30_000, "\(stats)")

        _ = FileManager.default.createFile(atPath: unblock, contents: nil)
        let second = try HostProcess(["run", manifest, "--spool", spool])
        second.closeInput()
        #expect(await second.exitStatus() == 0, "recovery needs no room of its own: \(second.stderr.elements.suffix(5))")
        let replayed = try await second.wholeResults()
        #expect(second.stderr.elements.contains { $0.contains("spool: replaying \(accepted) accepted lines") }, "\(second.stderr.elements.prefix(8))")
        #expect(replayed.count == accepted, "every job the first host accepted, and only those")
        #expect(replayed.allSatisfy { $0.status == "completed" && $0.text.contains(#""replayed":true"#) })
    }

    // MARK: - Resuming a file

    enum Replacement: String, CaseIterable {
        /// Another file under the same name (another inode).
        case newFileSameName
        /// Another file, by another name.
        case otherFile
        /// The same file, rewritten in place with other lines.
        case rewrittenInPlace
    }

    @Test(arguments: Replacement.allCases)
    func resumesOnlyTheFileItWasReading(replacement: Replacement) async throws {
        let scratch = try Scratch()
        let (original, _) = try input(10_000, in: scratch)
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Products.plugin("BatchmanTestPlugin"))", "config": {"sleep_ms": 20}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 500}"#)
        let spool = scratch.path("spool")
        let first = try HostProcess(["run", manifest, "--input", original, "--spool", spool, "--max-output-bytes", "65536"])
        first.kill(afterLines: 1_000)
        _ = await first.exitStatus()

        let next: String
        switch replacement {
        case .newFileSameName:
            try FileManager.default.removeItem(atPath: original)
            next = try input(10_000, first: 100_000, in: scratch).path
        case .otherFile:
            next = try input(10_000, first: 100_000, in: scratch, name: "other.ndjson").path
        case .rewrittenInPlace:
            let handle = try #require(FileHandle(forWritingAtPath: original))
            var text = ""
            for index in 100_000..<110_000 { text += #"{"key":"k","id":"\#(index)","payload":\#(index)}"# + "\n" }
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: Data(text.utf8))
            try handle.close()
            next = original
        }
        let second = try HostProcess(["run", manifest, "--input", next, "--spool", spool])
        #expect(await second.exitStatus() == 0)
        let fresh = try await second.wholeResults().filter { !$0.text.contains(#""replayed":true"#) }.compactMap { $0.id.flatMap(Int.init) }

        #expect(Set(fresh) == Set(100_000..<110_000), "every line of the new file, from its start: \(fresh.count) of 10000")
        #expect(second.stderr.elements.contains { $0.contains("is not the file the spool was reading") && $0.contains("reading it from the start") },
                "\(second.stderr.elements.prefix(6))")
    }

    // MARK: - Private files

    @Test func theSpoolIsPrivateAndItsFilesAreNeverFollowedThroughALink() async throws {
        let scratch = try Scratch()
        let unblock = scratch.path("unblock")
        let manifest = try echoManifest(scratch, config: #"{"wait_file": "\#(unblock)"}"#)
        let spool = scratch.path("spool")
        let host = try HostProcess(["run", manifest, "--spool", spool])
        host.send([#"{"key":"k","id":"1","payload":1}"#])
        await host.waitForLog(containing: "reading jobs from standard input")  // statistics are ignored while starting
        await host.waitUntilAccepted(1)

        func mode(_ path: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1 }
        #expect(mode(spool) == 0o700)
        #expect(mode("\(spool)/quarantine") == 0o700)
        let files = try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0 != "quarantine" }
        #expect(files.contains { $0.hasPrefix("segment-") } && files.contains("lock") && files.contains("ledger"), "\(files)")
        for file in files { #expect(mode("\(spool)/\(file)") == 0o600, "\(file) is \(String(mode("\(spool)/\(file)"), radix: 8))") }
        _ = FileManager.default.createFile(atPath: unblock, contents: nil)
        host.closeInput()
        #expect(await host.exitStatus() == 0)

        // A lock planted as a link to someone's file: refused, and the file keeps its contents.
        let precious = try scratch.write("precious", "keep me\n")
        let planted = scratch.path("planted")
        try FileManager.default.createDirectory(atPath: planted, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(planted)/lock", withDestinationPath: precious)
        let refused = try await run(Products.batchman, ["run", manifest, "--spool", planted], input: "")
        #expect(refused.status == 64)
        #expect(refused.errorOutput.contains("\(planted)/lock is a symbolic link"), "\(refused.errorOutput)")
        #expect(try String(contentsOfFile: precious, encoding: .utf8) == "keep me\n")

        // A folder others can read is made private, and the host says so.
        let open = scratch.path("open")
        try FileManager.default.createDirectory(atPath: open, withIntermediateDirectories: true)
        chmod(open, 0o755)
        let tightened = try await run(Products.batchman, ["run", manifest, "--spool", open], input: "")
        #expect(tightened.status == 0)
        #expect(mode(open) == 0o700)
        #expect(tightened.errorOutput.contains("\(open) could be read by other users (mode 0755): made it 0700"), "\(tightened.errorOutput)")
    }
}
