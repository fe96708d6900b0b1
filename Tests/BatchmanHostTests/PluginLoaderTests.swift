import Foundation
import Testing

/// `batchman check` and `batchman run` against broken plugins: every loader error is specific
/// and names the plugin file.
@Suite(.timeLimit(.minutes(5)))
struct PluginLoaderTests {
    static let fixture = Products.packageRoot.appendingPathComponent("Tests/Fixtures/broken_plugin.c").path

    /// Runs `batchman check` on a manifest with one key using `plugin`.
    func check(_ plugin: String, in scratch: Scratch, config: String = "{}") async throws -> (status: Int32, output: String, errorOutput: String) {
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(plugin)", "config": \#(config)}}"#)
        return try await run(Products.batchman, ["check", manifest])
    }

    @Test func loadsAPluginBuiltWithPlainCCOutsideThePackage() async throws {
        let scratch = try Scratch()
        try await scratch.compilePlugin("Works", source: Self.fixture)

        let result = try await check("Works", in: scratch)

        #expect(result.status == 0, "\(result.errorOutput)")
        #expect(result.output.contains("OK, 1 key\n"), "one key, not \"1 keys\": \(result.output)")
        #expect(result.output.contains("key \"default\": broken 0.0.0 (\(scratch.path("libWorks.so")))"))
    }

    @Test func reportsAMissingFileWithEveryPlaceItLooked() async throws {
        let scratch = try Scratch()
        let result = try await check("Nowhere", in: scratch)

        #expect(result.status == 78)
        let installed = Products.directory.appendingPathComponent("../lib/batchman/libNowhere.so").path
        #expect(result.errorOutput.contains("key \"default\": plugin \"Nowhere\" (\(scratch.path("libNowhere.so")) or \(Products.plugin("Nowhere")) or \(installed)): no such file"),
                "\(result.errorOutput)")
    }

    @Test func reportsAFileThatIsNotASharedLibrary() async throws {
        let scratch = try Scratch()
        try scratch.write("libText.so", "not an ELF file")

        let result = try await check("Text", in: scratch)

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("(\(scratch.path("libText.so"))): cannot be loaded: "))
        #expect(result.errorOutput.contains("is it a shared library built for this machine?"))
    }

    @Test(arguments: [
        ("NO_ENTRY", "symbol batchman_plugin_v1 not found; is this a Batchman plugin?"),
        ("NULL_DESCRIPTOR", "batchman_plugin_v1() returned NULL instead of its descriptor"),
        ("WRONG_MAGIC", "descriptor has magic 0xdeadbeef, expected 0x424d504c; is this a Batchman plugin?"),
        ("ABI_2", "plugin built for ABI 2.3, this host supports 1; rebuild the plugin against this host's batchman_plugin.h"),
        ("TOO_SMALL", "descriptor is 16 bytes, ABI 1.0 needs at least 56; rebuild the plugin"),
        ("NO_PROCESS", "descriptor has no process_batch function"),
    ])
    func refusesABrokenDescriptorWithASpecificMessage(define: String, message: String) async throws {
        let scratch = try Scratch()
        let library = try await scratch.compilePlugin("Broken", source: Self.fixture, defines: [define], strict: false)

        let result = try await check("Broken", in: scratch)

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("keys.default: key \"default\": plugin \"Broken\" (\(library)): \(message)"), "\(result.errorOutput)")
    }

    @Test func reportsTheRefusalOfCreateInThePluginsOwnWords() async throws {
        let scratch = try Scratch()
        let result = try await check(Products.plugin("BatchmanTestPlugin"), in: scratch, config: #"{"refuse": "missing credentials for the warehouse"}"#)

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("create() refused the configuration: missing credentials for the warehouse"))
    }

    @Test func reportsEveryProblemNotOnlyTheFirst() async throws {
        let scratch = try Scratch()
        try await scratch.compilePlugin("Old", source: Self.fixture, defines: ["ABI_2"], strict: false)
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Products.plugin("EchoPlugin"))"},
             "a": {"plugin": "Missing"},
             "b": {"plugin": "Old"},
             "c": {"plugin": "\(Products.plugin("BatchmanTestPlugin"))", "config": {"refuse": "no"}}}
            """)

        let result = try await run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        let problems = result.errorOutput.split(separator: "\n").filter { $0.contains(manifest) }
        #expect(problems.count == 3, "\(result.errorOutput)")
        #expect(problems.contains { $0.contains("keys.a:") && $0.contains("no such file") })
        #expect(problems.contains { $0.contains("keys.b:") && $0.contains("ABI 2.3") })
        #expect(problems.contains { $0.contains("keys.c:") && $0.contains("refused") })
    }

    /// A mistyped plugin name used to show only once the mistyped field next to it was fixed.
    @Test(arguments: ["check", "run"])
    func reportsAPluginThatCannotLoadTogetherWithTheFieldProblems(command: String) async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Products.plugin("EchoPlugin"))"},
             "logger": {"plugin": "LogPlugn", "frequncy": 100},
             "broken": {"plugin": "\(Products.plugin("EchoPlugin"))", "config": "not an object"}}
            """)

        let result = try await run(Products.batchman, [command, manifest], input: "")

        #expect(result.status == 78)
        let problems = result.errorOutput.split(separator: "\n").filter { $0.contains(manifest) }
        #expect(problems.contains { $0.contains(#"keys.logger.frequncy: unknown field; did you mean "frequency"?"#) }, "\(result.errorOutput)")
        #expect(problems.contains { $0.contains(#"keys.logger: key "logger": plugin "LogPlugn""#) && $0.contains("no such file") }, "\(result.errorOutput)")
        #expect(problems.contains { $0.contains("keys.broken.config: expected an object") })
        #expect(problems.count == 3, "the key whose config cannot be read is not loaded as well: \(result.errorOutput)")
    }

    @Test func refusesToRunWithABrokenPluginAndReadsNoInput() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "Missing"}}"#)

        let result = try await run(Products.batchman, ["run", manifest], input: #"{"key":"k","id":"1","payload":1}"# + "\n")

        #expect(result.status == 78)
        #expect(result.output.isEmpty)
        #expect(result.errorOutput.hasPrefix("batchman: \(manifest): keys.default: key \"default\": plugin \"Missing\""))
    }

    @Test func reportsManifestErrorsWithExitStatus78() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.write("plugins.json", #"{"keys": {"default": {"plugin": "EchoPlugin", "maxBatchSize": 0}}}"#)

        let result = try await run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        #expect(result.errorOutput == "batchman: \(manifest): keys.default.maxBatchSize: expected a whole number of at least 1, got the number 0\n")
    }

    @Test func answersUsageErrorsWithExitStatus64AndTheUsage() async throws {
        let result = try await run(Products.batchman, ["frobnicate"])
        #expect(result.status == 64)
        #expect(result.errorOutput.contains("unknown command \"frobnicate\"; the commands are run, check, submit, nats setup, nats publish, plugin-test or spool check"))
        #expect(result.errorOutput.split(separator: "\n").count == 1, "one line that says where the usage is, not all of it")

        let typo = try await run(Products.batchman, ["run", "plugins.json", "--wokers", "4"])
        #expect(typo.status == 64)
        #expect(typo.errorOutput == "batchman: unknown option --wokers for run; did you mean --workers? (batchman run --help lists them)\n")

        let help = try await run(Products.batchman, ["--help"])
        #expect(help.status == 0)
        #expect(help.output.contains("batchman run [MANIFEST]"))
        #expect(try await run(Products.batchman, ["--version"]).output.hasPrefix("batchman 0.1.0"))
    }

    @Test(arguments: [(["run", "--help"], "Usage: batchman run [MANIFEST] [options]"), (["check", "--help"], "Usage: batchman check [MANIFEST]"),
                      (["plugin-test", "--help"], "Usage: batchman plugin-test LIB.so"), (["spool", "check", "--help"], "Usage: batchman spool check DIR")])
    func printsEachCommandsOwnHelpAndExitsZero(arguments: [String], usage: String) async throws {
        let result = try await run(Products.batchman, arguments)
        #expect(result.status == 0, "\(result.errorOutput)")
        #expect(result.output.hasPrefix(usage), "\(result.output)")
        #expect(result.errorOutput.isEmpty)
    }
}
