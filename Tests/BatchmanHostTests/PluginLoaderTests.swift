import Foundation
import Testing

/// `batchman check` and `batchman run` against broken plugins: every loader error is specific
/// and names the plugin file.
@Suite(.timeLimit(.minutes(2)))
struct PluginLoaderTests {
    static let fixture = Products.packageRoot.appendingPathComponent("Tests/Fixtures/broken_plugin.c").path

    /// Runs `batchman check` on a manifest with one key using `plugin`.
    func check(_ plugin: String, in scratch: Scratch, config: String = "{}") throws -> (status: Int32, output: String, errorOutput: String) {
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(plugin)", "config": \#(config)}}"#)
        return try run(Products.batchman, ["check", manifest])
    }

    @Test func loadsAPluginBuiltWithPlainCCOutsideThePackage() throws {
        let scratch = try Scratch()
        try scratch.compilePlugin("Works", source: Self.fixture)

        let result = try check("Works", in: scratch)

        #expect(result.status == 0, "\(result.errorOutput)")
        #expect(result.output.contains("OK, 1 keys"))
        #expect(result.output.contains("key \"default\": broken 0.0.0 (\(scratch.path("libWorks.so")))"))
    }

    @Test func reportsAMissingFileWithEveryPlaceItLooked() throws {
        let scratch = try Scratch()
        let result = try check("Nowhere", in: scratch)

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("key \"default\": plugin \"Nowhere\" (\(scratch.path("libNowhere.so")) or \(Products.plugin("Nowhere"))): no such file"))
    }

    @Test func reportsAFileThatIsNotASharedLibrary() throws {
        let scratch = try Scratch()
        try scratch.write("libText.so", "not an ELF file")

        let result = try check("Text", in: scratch)

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
    func refusesABrokenDescriptorWithASpecificMessage(define: String, message: String) throws {
        let scratch = try Scratch()
        let library = try scratch.compilePlugin("Broken", source: Self.fixture, defines: [define], strict: false)

        let result = try check("Broken", in: scratch)

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("keys.default: key \"default\": plugin \"Broken\" (\(library)): \(message)"), "\(result.errorOutput)")
    }

    @Test func reportsTheRefusalOfCreateInThePluginsOwnWords() throws {
        let scratch = try Scratch()
        let result = try check(Products.plugin("BatchmanTestPlugin"), in: scratch, config: #"{"refuse": "missing credentials for the warehouse"}"#)

        #expect(result.status == 78)
        #expect(result.errorOutput.contains("create() refused the configuration: missing credentials for the warehouse"))
    }

    @Test func reportsEveryProblemNotOnlyTheFirst() throws {
        let scratch = try Scratch()
        try scratch.compilePlugin("Old", source: Self.fixture, defines: ["ABI_2"], strict: false)
        let manifest = try scratch.manifest("""
            {"default": {"plugin": "\(Products.plugin("EchoPlugin"))"},
             "a": {"plugin": "Missing"},
             "b": {"plugin": "Old"},
             "c": {"plugin": "\(Products.plugin("BatchmanTestPlugin"))", "config": {"refuse": "no"}}}
            """)

        let result = try run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        let problems = result.errorOutput.split(separator: "\n").filter { $0.contains(manifest) }
        #expect(problems.count == 3, "\(result.errorOutput)")
        #expect(problems.contains { $0.contains("keys.a:") && $0.contains("no such file") })
        #expect(problems.contains { $0.contains("keys.b:") && $0.contains("ABI 2.3") })
        #expect(problems.contains { $0.contains("keys.c:") && $0.contains("refused") })
    }

    @Test func refusesToRunWithABrokenPluginAndReadsNoInput() throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "Missing"}}"#)

        let result = try run(Products.batchman, ["run", manifest], input: #"{"key":"k","id":"1","payload":1}"# + "\n")

        #expect(result.status == 78)
        #expect(result.output.isEmpty)
        #expect(result.errorOutput.hasPrefix("batchman: \(manifest): keys.default: key \"default\": plugin \"Missing\""))
    }

    @Test func reportsManifestErrorsWithExitStatus78() throws {
        let scratch = try Scratch()
        let manifest = try scratch.write("plugins.json", #"{"keys": {"default": {"plugin": "EchoPlugin", "maxBatchSize": 0}}}"#)

        let result = try run(Products.batchman, ["check", manifest])

        #expect(result.status == 78)
        #expect(result.errorOutput == "batchman: \(manifest): keys.default.maxBatchSize: expected a whole number of at least 1, got the number 0\n")
    }

    @Test func answersUsageErrorsWithExitStatus64AndTheUsage() throws {
        let result = try run(Products.batchman, ["frobnicate"])
        #expect(result.status == 64)
        #expect(result.errorOutput.contains("unknown command \"frobnicate\""))
        #expect(result.errorOutput.contains("Usage:"))

        let help = try run(Products.batchman, ["--help"])
        #expect(help.status == 0)
        #expect(help.output.contains("batchman run [MANIFEST]"))
        #expect(try run(Products.batchman, ["--version"]).output.hasPrefix("batchman 0.1.0"))
    }
}
