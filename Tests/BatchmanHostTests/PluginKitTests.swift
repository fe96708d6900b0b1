import Foundation
import Testing

/// Where a toolchain a kit needs is found, if it is installed.
enum Toolchain {
    static func find(_ tool: String) -> String? {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init) + ["\(home)/.cargo/bin"]
        return path.map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static let cxx = find("c++")
    static let cargo = find("cargo")
    static let go = find("go")
    static let swift = find("swift")
}

/// The plugin kits (PluginKits/), each built with its own toolchain as a user would, loaded by
/// the real `batchman`, run end to end, and passed through `batchman plugin-test`. A missing
/// toolchain skips its kit, saying which; `.ci/run` installs them.
@Suite(.timeLimit(.minutes(10)))
struct PluginKitTests {
    static let kits = Products.packageRoot.appendingPathComponent("PluginKits")

    /// Builds a kit's library (`output`) with `tool` and `arguments`, run in the kit's folder.
    func build(_ kit: String, _ tool: String?, _ arguments: [String], output: String) async throws -> String {
        let tool = try #require(tool)
        let result = try await run(tool, arguments, directory: Self.kits.appendingPathComponent(kit).path)
        #expect(result.status == 0, "building the \(kit) kit: \(result.errorOutput)")
        #expect(FileManager.default.fileExists(atPath: output), "\(output) was not built")
        return output
    }

    /// What every kit must do: pass plugin-test, count words through the real host, and refuse
    /// a bad config with its message.
    func exercise(_ library: String, in scratch: Scratch) async throws {
        let check = try await run(Products.batchman, ["plugin-test", library, "--config", #"{"minLength": 2}"#])
        let lines = check.output.split(separator: "\n").map(String.init)
        #expect(check.status == 0, "plugin-test: \(check.output)")
        #expect(lines.count == 14 && lines.allSatisfy { $0.hasPrefix("ok   ") || $0.hasPrefix("time ") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("ok   concurrent calls: BM_FLAG_CONCURRENT") }, "every kit declares BM_FLAG_CONCURRENT")

        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(library)", "config": {"minLength": 2}}}"#,
                                            defaults: #"{"frequency": 60000, "maxBatchSize": 2}"#)
        let input = #"{"key":"k","id":"1","payload":"the quick brown fox"}"# + "\n" + #"{"key":"k","id":"2","payload":{"a":"hi x"}}"# + "\n"
        let host = try await run(Products.batchman, ["run", manifest], input: input)
        #expect(host.status == 0, "\(host.errorOutput)")
        #expect(host.errorOutput.contains("wordcount ready for key \"k\" (minLength 2)"), "the kit logs through host->log")
        let results = try host.output.split(separator: "\n").map { try ResultLine.parse(String($0)) }.sorted { $0.id ?? "" < $1.id ?? "" }
        #expect(results.map(\.resultJSON) == [#"{"total":4,"words":4}"#, #"{"total":5,"words":1}"#])

        let refused = try await run(Products.batchman, ["check", try scratch.manifest(#"{"default": {"plugin": "\#(library)", "config": {"minLength": 0}}}"#)])
        #expect(refused.status == 78)
        #expect((refused.output + refused.errorOutput).contains(#""minLength" must be a whole number from 1 to 100"#))
    }

    @Test(.enabled(if: Toolchain.cxx != nil, "the C++ kit needs a C++ compiler (c++): install Debian's g++"))
    func cppKit() async throws {
        let scratch = try Scratch()
        let library = scratch.path("libwordcount.so")
        try await exercise(try build("cpp", Toolchain.cxx, ["-std=c++17", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
                                                       "-o", library, "wordcount.cpp"], output: library), in: scratch)
    }

    @Test(.enabled(if: Toolchain.cargo != nil, "the Rust kit needs cargo: install Debian's cargo"))
    func rustKit() async throws {
        let scratch = try Scratch()
        let target = scratch.path("target")
        try await exercise(try build("rust", Toolchain.cargo, ["build", "--release", "--offline", "--target-dir", target],
                               output: "\(target)/release/libwordcount.so"), in: scratch)
    }

    @Test(.enabled(if: Toolchain.go != nil, "the Go kit needs go: install Debian's golang-go"))
    func goKit() async throws {
        let scratch = try Scratch()
        let library = scratch.path("libwordcount.so")
        try await exercise(try build("go", Toolchain.go, ["build", "-buildmode=c-shared", "-o", library, "."], output: library), in: scratch)
    }

    @Test(.enabled(if: Toolchain.swift != nil, "the Swift kit needs swift on PATH"))
    func swiftKit() async throws {
        let scratch = try Scratch()
        let products = scratch.path("swift")
        try await exercise(try build("swift", Toolchain.swift, ["build", "-c", "release", "--scratch-path", products],
                               output: "\(products)/release/libWordCount.so"), in: scratch)
    }

    @Test func everyKitsCopyOfTheHeaderIsTheHeader() throws {
        let header = try Data(contentsOf: URL(fileURLWithPath: Products.header).appendingPathComponent("batchman_plugin.h"))
        for copy in ["cpp/batchman_plugin.h", "go/batchman_plugin.h", "swift/Sources/CBatchmanPluginABI/include/batchman_plugin.h"] {
            #expect(try Data(contentsOf: Self.kits.appendingPathComponent(copy)) == header, "PluginKits/\(copy) differs from the header")
        }
    }

    @Test func theReadmeLinksEveryKitWithItsBuildAndCheckCommands() throws {
        let readme = try String(contentsOf: Products.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for kit in ["cpp", "rust", "go", "swift"] { #expect(readme.contains("(PluginKits/\(kit)/)"), "README links PluginKits/\(kit)/") }
        for command in ["c++ -std=c++17 -O2 -shared -fPIC -Wall -Wextra -o libwordcount.so wordcount.cpp", "cargo build --release --offline",
                        "go build -buildmode=c-shared -o libwordcount.so .", "batchman plugin-test"] {
            #expect(readme.contains(command), "README shows \(command)")
        }
    }
}
