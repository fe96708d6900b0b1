import BatchmanTesting
import Foundation
import Testing

/// `batchman run --listen`: many clients over real sockets, each answered on its own connection.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct HostServiceTests {
    static let echo = Products.plugin("EchoPlugin")
    static let testPlugin = Products.plugin("BatchmanTestPlugin")

    static func job(_ key: String, _ id: String, _ payload: String = "1") -> String { HostRunTests.job(key, id, payload) }

    func echoManifest(_ scratch: Scratch, frequency: Int = 5, maxBatchSize: Int = 100) throws -> String {
        try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#, defaults: #"{"frequency": \#(frequency), "maxBatchSize": \#(maxBatchSize)}"#)
    }

    @Test func answersSixteenClientsAtOnceEachWithExactlyItsOwnResults() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch))
        let clients = try (0..<16).map { _ in try host.client() }
        // Every client uses the same keys and ids: only its connection tells its jobs apart.
        for (number, client) in clients.enumerated() {
            client.send((1...500).map { Self.job("k\($0 % 3)", "\($0)", #"{"client":\#(number),"n":\#($0)}"#) }, thenShutDown: true)
        }
        for (number, client) in clients.enumerated() {
            await client.ended.wait(forCount: 1)
            let results = try await ResultLine.parse(client.lines.elements)
            #expect(results.count == 500)
            #expect(Set(results.compactMap(\.id)) == Set((1...500).map(String.init)))
            #expect(results.allSatisfy { $0.status == "completed" && $0.resultJSON.hasPrefix(#"{"client":\#(number),"#) })
        }
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
        #expect(host.lastStatistics?.contains("accepted=8000 completed=8000 failed=0") == true)
        #expect(host.lastStatistics?.contains("connections=0 orphaned=0") == true)
    }

    @Test func takesTheSameIdFromTwoClientsInOneBatch() async throws {
        let scratch = try Scratch()
        // One batch of exactly two jobs: it is sealed only when both are in.
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch, frequency: 60000, maxBatchSize: 2))
        let first = try host.client(), second = try host.client()

        first.send([Self.job("k", "1", #""first""#)])
        await host.process.waitUntilAccepted(1)
        let secondResults = try await second.exchange([Self.job("k", "1", #""second""#)])
        let firstResults = try await first.exchange([])

        #expect(firstResults.map(\.status) == ["completed"])
        #expect(secondResults.map(\.status) == ["completed"])
        #expect(firstResults.first?.resultJSON == #""first""#)
        #expect(secondResults.first?.resultJSON == #""second""#)
        #expect(firstResults.first?.batchId == secondResults.first?.batchId, "both were in one batch, neither a duplicate")
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
    }

    @Test func stillRefusesADuplicateIdFromOneClient() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch, frequency: 60000, maxBatchSize: 2))
        let client = try host.client()
        client.send([Self.job("k", "1"), Self.job("k", "1")])
        let duplicate = try await ResultLine.parse(await client.lines.wait(forCount: 1))
        host.process.signal(SIGTERM)
        await client.ended.wait(forCount: 1)

        #expect(duplicate.first?.errorReason == "duplicate")
        #expect(client.lines.elements.count == 2)
        #expect(await host.process.exitStatus() == 0)
    }

    @Test func answersAMalformedLineOnTheConnectionThatSentIt() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch))
        let other = try host.client()
        let client = try host.client()

        let results = try await client.exchange([Self.job("k", "1"), "not json", Self.job("k", "2")])
        let untouched = try await other.exchange([])

        #expect(results.count == 3)
        #expect(results.first { $0.errorReason == "invalid_input" }?.line == 2)
        #expect(untouched.isEmpty)
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
    }

    @Test func goesOnServingOthersWhileOneClientStopsReading() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch, maxBatchSize: 1000),
                                         arguments: ["--max-output-bytes", "65536"])
        // This client sends far more results' worth than the socket and the bound hold, and
        // reads none of them.
        let stalled = try host.client(reads: false)
        let padding = String(repeating: "x", count: 200)
        stalled.send((1...40_000).map { Self.job("k", "\($0)", #""\#(padding)""#) }, thenShutDown: true)
        await host.process.waitUntilAccepted(atLeast: 1000)

        let other = try host.client()
        let results = try await other.exchange((1...200).map { Self.job("k", "\($0)") })
        #expect(results.count == 200)
        #expect(results.allSatisfy { $0.status == "completed" })

        // Nothing of the stalled client's was lost: once it reads, every result comes.
        stalled.startReading()
        await stalled.ended.wait(forCount: 1)
        #expect(stalled.lines.elements.count == 40_000)
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
        #expect(host.lastStatistics?.contains("accepted=40200 completed=40200") == true)
    }

    @Test func clientsThatStopReadingHoldNoMoreThanTheMemoryBound() async throws {
        let scratch = try Scratch()
        // Each client's unwritten results would be bounded only per client (1 MiB); together,
        // eight clients that read nothing hit --max-pending-bytes, and the host reads no more.
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch, maxBatchSize: 1000),
                                         arguments: ["--max-output-bytes", "1048576", "--max-pending-bytes", "4194304"])
        let padding = String(repeating: "x", count: 200)
        let clients = try (0..<8).map { _ in try host.client(reads: false) }
        for client in clients { client.send((1...20_000).map { Self.job("k", "\($0)", #""\#(padding)""#) }, thenShutDown: true) }
        #expect(await host.process.waitForLog(containing: "reading input paused: accepted jobs without a result take --max-pending-bytes") != nil)

        // Nothing was lost: once they read, every client gets all of its results.
        for client in clients { client.startReading() }
        for client in clients {
            await client.ended.wait(forCount: 1)
            #expect(client.lines.elements.count == 20_000)
        }
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
    }

    @Test func runsTheJobsOfAClientThatLeftAndCountsTheirResultsAsOrphans() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch, frequency: 60000, maxBatchSize: 1000))
        let leaving = try host.client()
        leaving.send((1...5).map { Self.job("k", "\($0)") })
        await host.process.waitUntilAccepted(5)
        leaving.hangUp()
        await host.process.waitForLog(containing: "went away before all its results were written")

        let staying = try host.client()
        staying.send([Self.job("k", "1")])
        await host.process.waitUntilAccepted(6)
        host.process.signal(SIGTERM)
        await staying.ended.wait(forCount: 1)

        #expect(await host.process.exitStatus() == 0)
        #expect(try await ResultLine.parse(staying.lines.elements).map(\.id) == ["1"])
        #expect(host.lastStatistics?.contains("accepted=6 completed=6") == true, "the orphans' jobs still ran")
        #expect(host.lastStatistics?.contains("orphaned=5") == true)
    }

    @Test func drainsOnSIGTERMAndAnswersEveryClientStillConnected() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch, frequency: 60000, maxBatchSize: 1000))
        let clients = try (0..<4).map { _ in try host.client() }
        for (number, client) in clients.enumerated() { client.send((1...10).map { Self.job("k\(number)", "\($0)") }) }
        await host.process.waitUntilAccepted(40)

        host.process.signal(SIGTERM)

        for client in clients {
            await client.ended.wait(forCount: 1)
            let results = try await ResultLine.parse(client.lines.elements)
            #expect(results.count == 10)
            #expect(results.allSatisfy { $0.status == "completed" })
        }
        #expect(await host.process.exitStatus() == 0)
        #expect(host.process.stderr.elements.contains { $0.contains("received SIGTERM: accepting no more clients") })
        #expect(!FileManager.default.fileExists(atPath: host.socketPath), "the socket file is removed at exit")
        #expect(throws: TestClient.ConnectFailure.self) { try TestClient(unixPath: host.socketPath) }
    }

    @Test func reloadsOnSIGHUPWithClientsConnected() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch))
        let client = try host.client()
        client.send((1...50).map { Self.job("k", "\($0)") })
        _ = await client.lines.wait(forCount: 50)

        host.process.signal(SIGHUP)
        #expect(await host.process.waitForLog(containing: "reload 1: ok") != nil)
        let results = try await client.exchange((51...100).map { Self.job("k", "\($0)") })

        #expect(results.count == 100)
        #expect(results.allSatisfy { $0.status == "completed" })
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
    }

    @Test func replaysASpooledClientsJobsAfterAKillAndCountsTheirResultsAsOrphans() async throws {
        let scratch = try Scratch()
        let manifest = try echoManifest(scratch, frequency: 60000, maxBatchSize: 1000)
        let spool = scratch.path("spool")
        let first = try await ServiceHost(scratch, manifest: manifest, arguments: ["--spool", spool, "--fsync", "always"])
        let client = try first.client()
        client.send((1...7).map { Self.job("k", "\($0)") })
        await first.process.waitUntilAccepted(7)
        kill(first.process.hostProcessIdentifier, SIGKILL)
        _ = await first.process.exitStatus()
        await client.ended.wait(forCount: 1)

        let second = try await ServiceHost(scratch, manifest: manifest, arguments: ["--spool", spool])
        #expect(second.process.stderr.elements.contains { $0.contains("spool: replaying 7 accepted lines") })
        second.process.signal(SIGTERM)

        #expect(await second.process.exitStatus() == 0)
        #expect(second.lastStatistics?.contains("accepted=7 completed=7") == true, "replayed jobs run again")
        #expect(second.lastStatistics?.contains("orphaned=7") == true, "nobody is there for their results")
        // Answered: a third run replays nothing.
        let third = try await ServiceHost(scratch, manifest: manifest, arguments: ["--spool", spool])
        third.process.signal(SIGTERM)
        #expect(await third.process.exitStatus() == 0)
        #expect(!third.process.stderr.elements.contains { $0.contains("spool: replaying") })
    }

    @Test func replacesAStaleSocketFileAndRefusesAnyOtherFile() async throws {
        let scratch = try Scratch()
        let manifest = try echoManifest(scratch)
        let path = scratch.path("batchman.sock")
        // A socket file nobody listens on, as a host killed with -9 leaves it.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        close(stale)
        #expect(throws: TestClient.ConnectFailure.self) { try TestClient(unixPath: path) }

        let host = try await ServiceHost(scratch, manifest: manifest)
        #expect(host.process.stderr.elements.contains { $0.contains("replaced a stale socket file") })
        let results = try await host.client().exchange([Self.job("k", "1")])
        #expect(results.map(\.status) == ["completed"])

        // A second host on the same path finds the first one listening and leaves it alone.
        let second = try await run(Products.batchman, ["run", manifest, "--listen", "unix:\(path)"])
        #expect(second.status == 70)
        #expect(second.errorOutput.contains("another process is listening on this socket"))
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)

        let file = try scratch.write("not-a-socket", "precious")
        let refused = try await run(Products.batchman, ["run", manifest, "--listen", "unix:\(file)"])
        #expect(refused.status == 70)
        #expect(refused.errorOutput.contains("the path exists and is not a socket"))
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "precious")
    }

    @Test func listensOnALoopbackTCPPortItPicksAndSaysWhich() async throws {
        let scratch = try Scratch()
        let host = try HostProcess(["run", try echoManifest(scratch), "--listen", "tcp:127.0.0.1:0"])
        let line = try #require(await host.waitForLog(containing: "listening on tcp:127.0.0.1:"))
        let port = try #require(UInt16(line.split(separator: ":").last!.split(separator: " ").first!))
        #expect(port != 0)

        let results = try await TestClient(port: port).exchange([Self.job("k", "1"), Self.job("k", "2")])

        #expect(results.map(\.status) == ["completed", "completed"])
        host.signal(SIGTERM)
        #expect(await host.exitStatus() == 0)
    }

    @Test func closesAClientOverMaxConnectionsAtOnce() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try echoManifest(scratch), arguments: ["--max-connections", "1"])
        let first = try host.client()
        first.send([Self.job("k", "1")])
        _ = await first.lines.wait(forCount: 1)

        let second = try host.client()
        await second.ended.wait(forCount: 1)

        #expect(second.lines.elements.isEmpty)
        #expect(await host.process.waitForLog(containing: "closed a new client at once: --max-connections 1 reached") != nil)
        #expect(try await first.exchange([Self.job("k", "2")]).count == 2, "the first client is untouched")
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
    }

    @Test func takesNoMoreClientsThanTheLimitOnOpenFilesLeavesRoomFor() async throws {
        let scratch = try Scratch()
        let socketPath = scratch.path("batchman.sock")
        // 128 descriptors: 64 stay the host's, 64 clients; the other 16 are closed at once, and
        // nothing runs out of descriptors (the runtime's own needs some).
        let host = try HostProcess(["-c", "ulimit -n 128 && exec \"$0\" \"$@\"", Products.batchman, "run", try echoManifest(scratch),
                                    "--listen", "unix:\(socketPath)"], executable: "/bin/sh")
        #expect(await host.waitForLog(containing: "--max-connections 1024 lowered to 64: the limit on open files (ulimit -n 128)") != nil)
        await host.waitForLog(containing: "listening on unix:")
        let clients = try (0..<80).map { _ in try TestClient(unixPath: socketPath) }
        for (number, client) in clients.enumerated() { client.send([Self.job("k", "\(number)")], thenShutDown: true) }
        for client in clients { await client.ended.wait(forCount: 1) }

        host.signal(SIGTERM)
        #expect(await host.exitStatus() == 0)
        let answered = clients.filter { $0.lines.elements.count == 1 }.count
        #expect(answered == 64, "the clients within the bound")
        #expect(host.stderr.elements.count { $0.contains("closed a new client at once: --max-connections 64 reached") } == 16)
        #expect(host.stderr.elements.contains { $0.contains("stats: accepted=64 completed=64") })
    }

    @Test func readsStandardInputTooWhenAskedWithInputDash() async throws {
        let scratch = try Scratch()
        let host = try HostProcess(["run", try echoManifest(scratch), "--listen", "unix:\(scratch.path("b.sock"))", "--input", "-"])
        await host.waitForLog(containing: "listening on unix:")
        host.send([Self.job("k", "from-stdin")])
        let fromStandardInput = try await host.results(count: 1)
        let fromClient = try await TestClient(unixPath: scratch.path("b.sock")).exchange([Self.job("k", "from-socket")])
        // End of standard input does not end a host that serves clients.
        host.closeInput()
        #expect(await host.waitForLog(containing: "serving clients until SIGINT or SIGTERM") != nil)
        host.signal(SIGTERM)

        #expect(await host.exitStatus() == 0)
        #expect(fromStandardInput.map(\.id) == ["from-stdin"])
        #expect(fromClient.map(\.id) == ["from-socket"])
    }
}

/// `batchman submit`: the client that ships with the host.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SubmitCommandTests {
    @Test func printsEveryResultAndExitsZero() async throws {
        let scratch = try Scratch()
        let host = try await ServiceHost(scratch, manifest: try HostServiceTests().echoManifest(scratch))
        let input = (1...20).map { HostServiceTests.job("k", "\($0)") }.joined(separator: "\n") + "\n\n   \nnot json"

        let submitted = try await run(Products.batchman, ["submit", "--connect", "unix:\(host.socketPath)"], input: input)

        #expect(submitted.status == 0)
        let results = try submitted.output.split(separator: "\n").map { try ResultLine.parse(String($0)) }
        #expect(results.count == 21, "20 jobs and the invalid line; blank lines are not jobs")
        #expect(results.filter { $0.status == "completed" }.count == 20)
        host.process.signal(SIGTERM)
        #expect(await host.process.exitStatus() == 0)
    }

    @Test func exitsSixtyNineWhenNoHostListens() async throws {
        let scratch = try Scratch()
        let submitted = try await run(Products.batchman, ["submit", "--connect", "unix:\(scratch.path("nobody.sock"))"], input: "")
        #expect(submitted.status == 69)
        #expect(submitted.errorOutput.contains("cannot connect to unix:"))
    }

    @Test func exitsSeventyWhenTheConnectionEndsBeforeEveryResult() async throws {
        let scratch = try Scratch()
        // A host that takes the jobs and dies: killed once it has accepted them.
        let host = try await ServiceHost(scratch, manifest: try HostServiceTests().echoManifest(scratch, frequency: 60000))
        let pid = host.process.hostProcessIdentifier
        Thread.detachNewThread {
            for _ in 0..<20_000 {
                if host.process.stderr.elements.contains(where: { $0.contains("stats: accepted=3 ") }) { break }
                kill(host.process.processIdentifier, SIGUSR1)
                usleep(5000)
            }
            kill(pid, SIGKILL)
        }
        let input = (1...3).map { HostServiceTests.job("k", "\($0)") }.joined(separator: "\n")
        let submitted = try await run(Products.batchman, ["submit", "--connect", "unix:\(host.socketPath)"], input: input)

        #expect(submitted.status == 70)
        #expect(submitted.errorOutput.contains("ended after 0 of 3 results"))
    }
}
