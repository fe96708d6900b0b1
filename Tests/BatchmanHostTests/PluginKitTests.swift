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
    static let cc = find("cc")
    static let sqlite3 = find("sqlite3")
    /// The C kit links SQLite: its headers come with Debian's libsqlite3-dev.
    static let hasSQLiteHeaders = FileManager.default.fileExists(atPath: "/usr/include/sqlite3.h")
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

        // ABI 1.1: a failure the kit names (emit_detailed).
        let limited = try scratch.manifest(#"{"default": {"plugin": "\#(library)", "config": {"minLength": 2, "maxWords": 3}}}"#,
                                           defaults: #"{"frequency": 20, "maxBatchSize": 2}"#)
        let named = try await run(Products.batchman, ["run", limited], input: #"{"key":"k","id":"1","payload":"one two three four"}"# + "\n")
        let failed = try ResultLine.parse(named.output.trimmingCharacters(in: .newlines))
        #expect(failed.errorReason == "plugin:too_many_words", "\(named.output) \(named.errorOutput)")
        #expect(failed.errorMessage == "4 words, more than maxWords 3")

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

    /// The C kit's transactional SQLite sink: rows stored once, a relative database found in the
    /// manifest's folder, a real duplicate refused by name, and a job replayed after a crash
    /// that finds its own row answered as stored.
    @Test func cKit() async throws {
        guard Toolchain.cc != nil, Toolchain.sqlite3 != nil, Toolchain.hasSQLiteHeaders else {
            try #require(ProcessInfo.processInfo.environment["CI"] == nil, "CI installs Debian's libsqlite3-dev and sqlite3 for the C kit")
            return  // the C kit needs cc, sqlite3 and SQLite's headers: install Debian's libsqlite3-dev and sqlite3
        }
        let scratch = try Scratch()
        let library = scratch.path("libsqlite_sink.so")
        _ = try await build("c", Toolchain.cc, ["-std=c99", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o", library,
                                                "sqlite_sink.c", "-lsqlite3"], output: library)
        let jobs = try scratch.write("jobs.ndjson", (1...20).map { #"{"key":"k","id":"\#($0)","payload":{"n":\#($0)}}"# }.joined(separator: "\n"))
        let check = try await run(Products.batchman, ["plugin-test", library, "--config", #"{"database": "\#(scratch.path("check.db"))"}"#,
                                                     "--jobs", jobs])
        #expect(check.status == 0, "plugin-test: \(check.output)")

        // Relative to the manifest's folder, though batchman runs in another.
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(library)", "instances": "shared", "config": {"database": "rows.db"}}}"#,
                                            defaults: #"{"frequency": 20, "maxBatchSize": 50, "timeout": 10000}"#)
        let input = (1...200).map { #"{"key":"k\#($0 % 4)","id":"\#($0)","payload":{"n":\#($0)}}"# + "\n" }.joined()
        let stored = try await run(Products.batchman, ["run", manifest], input: input, directory: "/")
        #expect(stored.status == 0, "\(stored.errorOutput)")
        #expect(stored.output.split(separator: "\n").count == 200)
        #expect(stored.output.split(separator: "\n").allSatisfy { $0.contains(#""result":{"stored":true}"#) })
        let rows = try await run(try #require(Toolchain.sqlite3), [scratch.path("rows.db"), "SELECT count(*), count(DISTINCT key || '/' || id) FROM jobs"])
        #expect(rows.output.trimmingCharacters(in: .whitespacesAndNewlines) == "200|200")

        let duplicate = try await run(Products.batchman, ["run", manifest], input: #"{"key":"k1","id":"1","payload":1}"# + "\n")
        #expect(try ResultLine.parse(duplicate.output.trimmingCharacters(in: .newlines)).errorReason == "plugin:constraint")

        // A host killed before it answered: its spool replays the jobs, marked as delivered before.
        let spool = scratch.path("spool")
        let waiting = try scratch.write("waiting.json", #"{"defaults": {"frequency": 600000}, "keys": {"default": {"plugin": "\#(library)", "config": {"database": "rows.db"}}}}"#)
        let first = try HostProcess(["run", waiting, "--spool", spool, "--fsync", "always"])
        first.send([#"{"key":"r","id":"1","payload":1}"#, #"{"key":"r","id":"2","payload":2}"#])
        _ = await first.waitForLog(containing: "reading jobs from standard input")
        await first.waitUntilAccepted(2)
        first.signal(SIGKILL)
        _ = await first.exitStatus()
        // As if the killed host's call had committed job 1 before the kill.
        _ = try await run(try #require(Toolchain.sqlite3), [scratch.path("rows.db"), "INSERT INTO jobs VALUES ('r', '1', '1')"])
        let replay = try await run(Products.batchman, ["run", manifest, "--spool", spool], input: "")
        #expect(replay.status == 0, "\(replay.errorOutput)")
        let replayed = Dictionary(try replay.output.split(separator: "\n").map { try ResultLine.parse(String($0)) }.map { ($0.id ?? "", $0) }) { a, _ in a }
        #expect(replayed["1"]?.resultJSON == #"{"again":true,"stored":true}"#, "its own row, from the delivery before the crash")
        #expect(replayed["2"]?.resultJSON == #"{"stored":true}"#)
    }

    @Test func everyKitsCopyOfTheHeaderIsTheHeader() throws {
        let header = try Data(contentsOf: URL(fileURLWithPath: Products.header).appendingPathComponent("batchman_plugin.h"))
        for copy in ["c/batchman_plugin.h", "cpp/batchman_plugin.h", "go/batchman_plugin.h", "swift/Sources/CBatchmanPluginABI/include/batchman_plugin.h"] {
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
