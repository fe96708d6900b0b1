import BatchmanTesting
import Foundation
import Testing

/// `--spool`: real hosts, real `kill -9`, real damage to the files.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SpoolTests {
    /// A file of `count` jobs over 4 keys (ids unique per key), and the set of their key/ids.
    func input(_ count: Int, in scratch: Scratch) throws -> (path: String, jobs: Set<String>) {
        var text = ""
        text.reserveCapacity(count * 48)
        var jobs = Set<String>()
        for index in 0..<count {
            text += #"{"key":"k\#(index % 4)","id":"\#(index)","payload":\#(index)}"# + "\n"
            jobs.insert("k\(index % 4)/\(index)")
        }
        return (try scratch.write("input.ndjson", text), jobs)
    }

    /// A manifest whose plugin takes `sleepMilliseconds` per batch of 500.
    func slowManifest(_ sleepMilliseconds: Int, in scratch: Scratch) throws -> String {
        try scratch.manifest(#"{"default": {"plugin": "\#(Products.plugin("BatchmanTestPlugin"))", "config": {"sleep_ms": \#(sleepMilliseconds)}}}"#,
                             defaults: #"{"frequency": 20, "maxBatchSize": 500}"#)
    }

    func start(_ manifest: String, _ input: String, _ spool: String, _ extra: [String] = []) throws -> HostProcess {
        try HostProcess(["run", manifest, "--input", input, "--spool", spool, "--max-output-bytes", "65536"] + extra)
    }

    func key(_ line: ResultLine) -> String { "\(line.key ?? "-")/\(line.id ?? "-")" }

    @Test func killNineAtRandomMomentsLosesNoLineAndTheLedgerBoundsTheDuplicates() async throws {
        let scratch = try Scratch()
        let (input, jobs) = try input(200_000, in: scratch)
        let manifest = try slowManifest(15, in: scratch)
        let spool = scratch.path("spool")
        var results: [ResultLine] = []
        var generator = SystemRandomNumberGenerator()
        let kills = 4
        for _ in 0..<kills {
            let host = try start(manifest, input, spool)
            // A random moment, told by the results themselves: after some thousands of them.
            let moment = Int.random(in: 2_000...15_000, using: &generator)
            host.kill(afterLines: moment)
            #expect(await host.exitStatus() != 0, "the host ended by itself before \(moment) results: \(host.stderr.elements.suffix(5))")
            results += try await host.wholeResults()
        }
        let last = try start(manifest, input, spool)
        #expect(await last.exitStatus() == 0, "\(last.stderr.elements.suffix(5))")
        let finalResults = try await last.wholeResults()
        results += finalResults

        let answered = Set(results.map(key))
        let unanswered = jobs.subtracting(answered)
        #expect(unanswered.isEmpty, "\(unanswered.count) jobs never answered, such as \(unanswered.sorted().prefix(5))")
        #expect(results.allSatisfy { $0.status == "completed" })
        let duplicates = results.count - answered.count
        // A result written but not yet marked done in the ledger when the process died is
        // answered again: at most the writer's chunk in flight at each kill (65536 bytes of
        // output, a few hundred lines). Without the ledger every answered line would come again.
        #expect(duplicates <= kills * 1_000, "\(duplicates) duplicates over \(kills) kills")
        #expect(last.stderr.elements.contains { $0.contains("spool: resuming --input") })
        let spoolState = try await run(Products.batchman, ["spool", "check", spool])
        #expect(spoolState.status == 0)
        #expect(spoolState.output.contains("0 record(s), 0 not answered"), "\(spoolState.output)")
    }

    @Test func startsOnADamagedSpoolQuarantinesWhatItMustAndAnswersEveryJobItCan() async throws {
        let scratch = try Scratch()
        let (input, jobs) = try input(20_000, in: scratch)
        let manifest = try slowManifest(50, in: scratch)
        let spool = scratch.path("spool")
        let first = try start(manifest, input, spool)
        _ = await first.stdout.wait(forCount: 500)
        first.signal(SIGKILL)
        _ = await first.exitStatus()
        let firstResults = try await first.wholeResults()

        // Damage: a flipped byte inside a record, a torn tail, and a ledger that is garbage.
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: spool).filter { $0.hasPrefix("segment-") }.sorted().first)
        let segmentPath = "\(spool)/\(segment)"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: segmentPath))
        #expect(bytes.count > 10_000, "the reader spooled far ahead of the slow plugin")
        bytes[5_000] ^= 0xFF
        bytes = bytes.dropLast(7)
        try bytes.write(to: URL(fileURLWithPath: segmentPath))
        try Data("not a ledger".utf8).write(to: URL(fileURLWithPath: "\(spool)/ledger"))

        let check = try await run(Products.batchman, ["spool", "check", spool])
        #expect(check.status == 1)
        #expect(check.output.contains("ledger: DAMAGED"))
        #expect(check.output.contains("DAMAGED record at byte"))
        #expect(check.output.contains("a torn tail"))

        let second = try start(manifest, input, spool)
        #expect(await second.exitStatus() == 0)
        let log = second.stderr.elements.joined(separator: "\n")
        #expect(log.contains("the done ledger was damaged; moved to \(spool)/quarantine/"))
        #expect(log.contains("a write cut short by the crash; cut off"))
        #expect(log.contains("a damaged record at byte"))
        #expect(log.contains("1 damaged record(s) quarantined"))
        let quarantine = try FileManager.default.contentsOfDirectory(atPath: "\(spool)/quarantine")
        #expect(quarantine.count == 2, "the ledger and the record: \(quarantine)")

        // Every job is answered but the one in the damaged record, unless the first run had.
        let lost = try #require(quarantine.first { $0.hasSuffix(".record") })
        let lostLine = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "\(spool)/quarantine/\(lost)")), as: UTF8.self)
        let answered = Set((firstResults + (try await ResultLine.parse(second.stdout.elements))).map(key))
        let missing = jobs.subtracting(answered)
        #expect(missing.count <= 1)
        for job in missing { #expect(lostLine.contains(#""id":"\#(job.split(separator: "/")[1])""#), "\(job) is not the quarantined one") }
        #expect(try await ResultLine.parse(second.stdout.elements).contains { $0.text.contains(#""replayed":true"#) })
        #expect(try await run(Products.batchman, ["spool", "check", spool]).status == 0, "repaired")
    }

    @Test func aFullSpoolStopsTheReadingOfInputAndDropsNothing() async throws {
        let scratch = try Scratch()
        let (input, jobs) = try input(100_000, in: scratch)  // about 4.6 MB of records
        let waitFile = scratch.path("unblock")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Products.plugin("BatchmanTestPlugin"))", "config": {"wait_file": "\#(waitFile)"}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 500}"#)
        let host = try start(manifest, input, scratch.path("spool"), ["--spool-max-bytes", "1048576"])

        let paused = await host.waitForLog(containing: "reading input paused until answered lines free room")
        #expect(paused?.contains("holds --spool-max-bytes (1048576)") == true)
        let seen = host.stderr.elements.count
        host.signal(SIGUSR1)
        let stats = try #require(await host.waitForLog(containing: "stats: accepted=", skipping: seen))
        let accepted = try #require(Int(stats.split(separator: "accepted=")[1].prefix { $0.isNumber }))
        #expect(accepted < 40_000, "about 1 MiB of 46-byte records, not all 100,000 lines: \(stats)")

        try scratch.write("unblock", "")
        #expect(await host.exitStatus() == 0)
        #expect(jobs.subtracting(try await host.wholeResults().map(key)).isEmpty, "nothing dropped")
    }

    @Test func refusesASecondHostOnTheSameSpool() async throws {
        let scratch = try Scratch()
        let manifest = try slowManifest(0, in: scratch)
        let spool = scratch.path("spool")
        let first = try HostProcess(["run", manifest, "--spool", spool])
        first.send([#"{"key":"k","id":"1","payload":1}"#])
        _ = await first.waitForLog(containing: "reading jobs from standard input")

        let second = try await run(Products.batchman, ["run", manifest, "--spool", spool], input: #"{"key":"k","id":"2","payload":2}"# + "\n")
        #expect(second.status == 70)
        #expect(second.errorOutput.contains("--spool \(spool) is in use by another batchman (pid \(first.processIdentifier)); a spool serves one host at a time"))

        first.closeInput()
        #expect(await first.exitStatus() == 0)
        #expect(try await run(Products.batchman, ["spool", "check", spool]).output.contains("lock: free"))
    }

    @Test func replaysWhatAPipedHostAcceptedAndSaysSo() async throws {
        let scratch = try Scratch()
        let waitFile = scratch.path("unblock")
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Products.plugin("BatchmanTestPlugin"))", "config": {"wait_file": "\#(waitFile)"}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 10}"#)
        let spool = scratch.path("spool")
        let first = try HostProcess(["run", manifest, "--spool", spool, "--fsync", "always"])
        first.send((1...5).map { #"{"key":"k","id":"\#($0)","payload":\#($0)}"# })
        _ = await first.waitForLog(containing: "reading jobs from standard input")
        await first.waitUntilAccepted(5)
        first.signal(SIGKILL)
        _ = await first.exitStatus()
        #expect(first.stdout.elements.isEmpty, "the plugin never answered")

        try scratch.write("unblock", "")
        let second = try HostProcess(["run", manifest, "--spool", spool])
        second.closeInput()
        #expect(await second.exitStatus() == 0)
        let results = try await ResultLine.parse(second.stdout.elements)
        #expect(Set(results.map(\.id)) == ["1", "2", "3", "4", "5"])
        #expect(results.allSatisfy { $0.text.contains(#""replayed":true"#) && $0.status == "completed" })
        // Waited for, not read at once: standard error is read on a thread of its own, and may
        // not all be in when the exit is (seen once in .ci/run).
        #expect(await second.waitForLog(containing: "spool: replaying 5 accepted lines") != nil)
    }
}
