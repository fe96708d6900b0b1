import BatchmanHost
import Foundation
import Testing

/// The ABI's compatibility rule, proven with real builds: new fields are only appended, with a
/// new minor version; a host reads `struct_size` to know which a plugin has. Plugins are built
/// against edited copies of `batchman_plugin.h` as other versions would ship it.
@Suite struct ABICompatibilityTests {
    static let header = URL(fileURLWithPath: Products.header).appendingPathComponent("batchman_plugin.h")
    static let answerSource = Products.packageRoot.appendingPathComponent("Tests/Fixtures/answer_plugin.c").path
    /// The header as ABI 1.0 shipped it, kept verbatim: what plugins built before 1.1 saw.
    static let version1_0Headers = Products.packageRoot.appendingPathComponent("Tests/Fixtures/abi-1.0").path

    /// A copy of the header in `folder`, edited as version `major.minor` would be; with
    /// `appendedField`, bm_plugin ends with a field this host does not have.
    func header(major: Int, minor: Int, appendedField: Bool, in scratch: Scratch, folder: String) throws -> String {
        var text = try String(contentsOf: Self.header, encoding: .utf8)
        text = text.replacingOccurrences(of: "#define BM_ABI_MAJOR 1", with: "#define BM_ABI_MAJOR \(major)")
        text = text.replacingOccurrences(of: "#define BM_ABI_MINOR 1", with: "#define BM_ABI_MINOR \(minor)")
        if appendedField {
            let end = "    void (*destroy)(void *instance);\n} bm_plugin;"
            #expect(text.contains(end), "the header's bm_plugin ends with destroy")
            text = text.replacingOccurrences(of: end, with: "    void (*destroy)(void *instance);\n    /** 1.2: a field a 1.1 host does not know. */\n    int (*flush)(void *instance);\n} bm_plugin;")
        }
        let directory = scratch.path(folder)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try text.write(toFile: "\(directory)/batchman_plugin.h", atomically: true, encoding: .utf8)
        return directory
    }

    /// Builds answer_plugin.c against the header in `include`.
    func build(_ name: String, include: String, in scratch: Scratch) async throws -> String {
        let output = scratch.path("lib\(name).so")
        let result = try await run("/usr/bin/env", ["cc", "-shared", "-fPIC", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", include,
                                              Self.answerSource, "-o", output])
        #expect(result.status == 0, "\(result.errorOutput)")
        return output
    }

    @Test func anOlderHostLoadsAPluginBuiltForANewerMinorVersion() async throws {
        let scratch = try Scratch()
        let newer = try await build("Newer", include: try header(major: 1, minor: 2, appendedField: true, in: scratch, folder: "v1.2"), in: scratch)

        let plugin = try PluginLoader(manifestDirectory: scratch.url.path).load(newer, forKey: "k")
        #expect(plugin.abiMinor == 2)
        #expect(plugin.structSize == LoadedPlugin.version1_0DescriptorSize + MemoryLayout<UnsafeRawPointer>.size)

        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(newer)"}}"#, defaults: #"{"frequency": 60000, "maxBatchSize": 1}"#)
        let host = try await run(Products.batchman, ["run", manifest], input: #"{"key":"k","id":"1","payload":1}"# + "\n")
        #expect(host.status == 0, "\(host.errorOutput)")
        #expect(try ResultLine.parse(host.output.trimmingCharacters(in: .newlines)).resultJSON == #""v1""#)
        let check = try await run(Products.batchman, ["plugin-test", newer])
        #expect(check.status == 0)
        #expect(check.output.contains("ABI 1.2, struct_size \(plugin.structSize)"))
    }

    @Test func aNewerHostSeesThatAnOlderPluginLacksTheFieldsOfLaterMinorVersions() async throws {
        let scratch = try Scratch()
        // The 1.0 header as shipped: its bm_plugin is smaller than a 1.2 host's would be.
        let older = try await build("Older", include: Self.version1_0Headers, in: scratch)
        let newer = try await build("Newer", include: try header(major: 1, minor: 2, appendedField: true, in: scratch, folder: "v1.2"), in: scratch)
        let loader = PluginLoader(manifestDirectory: scratch.url.path)
        let flushEnds = LoadedPlugin.version1_0DescriptorSize + MemoryLayout<UnsafeRawPointer>.size

        let oldPlugin = try loader.load(older, forKey: "k")
        let newPlugin = try loader.load(newer, forKey: "k")

        #expect(oldPlugin.structSize == LoadedPlugin.version1_0DescriptorSize, "a 1.0 descriptor is loaded: the host asks for 1.0's size, not its own")
        #expect(!oldPlugin.hasField(endingAt: flushEnds), "the 1.2 field is absent from a 1.0 plugin: a 1.2 host must not read it")
        #expect(newPlugin.hasField(endingAt: flushEnds))
        #expect(oldPlugin.hasField(endingAt: LoadedPlugin.version1_0DescriptorSize))
    }

    @Test func refusesAPluginBuiltForAnotherMajorVersionSayingWhatToDo() async throws {
        let scratch = try Scratch()
        let future = try await build("Future", include: try header(major: 2, minor: 0, appendedField: true, in: scratch, folder: "v2.0"), in: scratch)

        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(future)"}}"#)
        let check = try await run(Products.batchman, ["check", manifest])

        #expect(check.status == 78)
        #expect(check.errorOutput.contains("plugin built for ABI 2.0, this host supports 1; rebuild the plugin against this host's batchman_plugin.h"))
    }
}
