import BatchmanTesting
import Foundation
import Testing

/// The README's "write a plugin" walkthroughs: the code it shows is these files, built the way
/// it says from outside the package, and run by the real host.
@Suite(.timeLimit(.minutes(3)))
struct WalkthroughTests {
    static let examples = Products.packageRoot.appendingPathComponent("examples/plugins")

    func readme() throws -> String {
        try String(contentsOf: Products.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
    }

    func runOneBatch(plugin: String, in scratch: Scratch) async throws -> [ResultLine] {
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(plugin)"}}"#, defaults: #"{"frequency": 60000, "maxBatchSize": 2}"#)
        let host = try HostProcess(["run", manifest])
        host.send([#"{"key":"k","id":"1","payload":{"a":1}}"#, #"{"key":"k","id":"2","payload":[true]}"#])
        let (status, results) = try await host.finish()
        #expect(status == 0, "\(host.stderr.elements)")
        return results
    }

    @Test func theCPluginInTheReadmeBuildsWithCCAndRuns() async throws {
        let source = try String(contentsOf: Self.examples.appendingPathComponent("tagger.c"), encoding: .utf8)
        #expect(try readme().contains(source), "README.md must show examples/plugins/tagger.c verbatim")
        let scratch = try Scratch()
        try await scratch.compilePlugin("Tagger", source: Self.examples.appendingPathComponent("tagger.c").path)

        let results = try await runOneBatch(plugin: "Tagger", in: scratch)

        #expect(results.map(\.resultJSON) == [#"{"batch":1,"seen":{"a":1},"size":2}"#, #"{"batch":1,"seen":[true],"size":2}"#])
    }

    @Test func theSwiftPluginInTheReadmeBuildsWithSwiftcAndRuns() async throws {
        let source = try String(contentsOf: Self.examples.appendingPathComponent("Counter.swift"), encoding: .utf8)
        #expect(try readme().contains(source), "README.md must show examples/plugins/Counter.swift verbatim")
        let scratch = try Scratch()
        let library = scratch.path("libCounter.so")
        let swiftc = try #require(ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
            .map { "\($0)/swiftc" }.first { FileManager.default.isExecutableFile(atPath: $0) })
        let build = try await run(swiftc, ["-emit-library", "-parse-as-library", "-I", Products.header,
                                     Self.examples.appendingPathComponent("Counter.swift").path, "-o", library])
        #expect(build.status == 0, "\(build.errorOutput)")

        let results = try await runOneBatch(plugin: "Counter", in: scratch)

        #expect(results.map(\.resultJSON) == ["1", "2"])
    }

    /// The README's install step, run as it is written but for the build folder (a release
    /// build takes minutes; the debug build's products are the same files): the installed
    /// `batchman` finds the example plugins by their bare names.
    @Test func theInstallStepGivesABatchmanThatFindsItsPluginsByName() async throws {
        let readme = try readme()
        let block = try #require(readme.components(separatedBy: "### Installing `batchman`").dropFirst().first?
            .components(separatedBy: "```sh\n").dropFirst().first?.components(separatedBy: "```").first)
        let installs = block.split(separator: "\n").filter { $0.hasPrefix("install ") }
        #expect(installs.count == 2, "\(block)")
        let scratch = try Scratch()
        let prefix = scratch.path("prefix")
        let script = "PREFIX=\(prefix)\n" + installs.joined(separator: "\n").replacing(".build/release", with: Products.directory.path)
        let installed = try await run("/bin/sh", ["-c", script])
        #expect(installed.status == 0, "\(installed.errorOutput)")
        let manifest = try scratch.write("elsewhere.json", #"{"keys": {"default": {"plugin": "EchoPlugin"}, "sum": {"plugin": "SumPlugin"}}}"#)

        let check = try await run("\(prefix)/bin/batchman", ["check", manifest])

        #expect(check.status == 0, "\(check.errorOutput)")
        #expect(check.output.contains("\(prefix)/lib/batchman/libEchoPlugin.so"), "\(check.output)")
    }
}
