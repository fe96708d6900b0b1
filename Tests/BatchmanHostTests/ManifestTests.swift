@testable import BatchmanHost
import Batchman
import FoundationEssentials
import Testing

@Suite struct ManifestTests {
    func parse(_ text: String) throws(ManifestError) -> Manifest {
        try Manifest.parse(Data(text.utf8), path: "/etc/batchman/plugins.json")
    }

    func problems(_ text: String) -> [String] {
        do {
            _ = try parse(text)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test func readsKeysPluginsSettingsAndConfig() throws {
        let manifest = try parse("""
            {"defaults": {"frequency": 5000, "maxBatchSize": 10},
             "keys": {"default": {"plugin": "EchoPlugin"},
                      "analytics": {"plugin": "./lib/libAnalytics.so", "frequency": 60000, "maxBatchSize": 500,
                                    "config": {"any": ["JSON", 1.50, true]}}}}
            """)
        #expect(manifest.directory == "/etc/batchman")
        #expect(manifest.keys.map(\.name) == ["default", "analytics"])
        #expect(manifest.keys[1].plugin == "./lib/libAnalytics.so")
        #expect(manifest.keys[1].config == #"{"any":["JSON",1.50,true]}"#, "config keeps its numbers' text")
        #expect(manifest.keys[0].config == "{}")
        #expect(manifest.keys[1].settings.values.frequency == .seconds(60))
    }

    @Test func resolvesEachKeyAgainstTheDefaultsAndUnnamedKeysAgainstTheDefaultEntry() throws {
        let manifest = try parse("""
            {"defaults": {"frequency": 2000, "maxBatchSize": 10},
             "keys": {"default": {"plugin": "Echo", "maxBatchSize": 100},
                      "logger": {"plugin": "Log", "frequency": 10000}}}
            """)
        let config = manifest.batchmanConfig()
        #expect(config.config(forKey: "logger") == BatcherConfig(frequency: .seconds(10), maxBatchSize: 10),
                "named keys fall back to defaults, not to the default entry")
        #expect(config.config(forKey: "unnamed") == BatcherConfig(frequency: .seconds(2), maxBatchSize: 100))
        #expect(config.config(forKey: "default") == BatcherConfig(frequency: .seconds(2), maxBatchSize: 100))
    }

    @Test func letsAKeyWithoutAPluginUseTheDefaultPlugin() throws {
        let manifest = try parse(#"{"keys": {"default": {"plugin": "Echo"}, "fast": {"maxBatchSize": 1}}}"#)
        #expect(manifest.keys.map(\.plugin) == ["Echo", "Echo"])
    }

    @Test func reportsEveryProblemWithItsPathAndWhatWasExpected() {
        let found = problems("""
            {"defaults": {"frequency": 0, "maxBatchSize": 2.5, "debug": "yes"},
             "keys": {"default": {"plugin": "Echo", "frequncy": 100},
                      "logger": {"plugin": 7, "config": [1]},
                      "odd key": {"plugin": "Echo", "maxBatchSize": -1}},
             "extra": true, "kyes": {}}
            """)
        #expect(found == [
            "(top level).extra: unknown field; expected one of defaults, keys",
            "(top level).kyes: unknown field; did you mean \"keys\"?",
            "defaults.frequency: expected a number of milliseconds greater than 0, got the number 0",
            "defaults.maxBatchSize: expected a whole number of at least 1, got the number 2.5",
            "defaults.debug: expected true or false, got the string \"yes\"",
            "keys.default.frequncy: unknown field; did you mean \"frequency\"?",
            "keys.logger.plugin: expected a non-empty string, got the number 7",
            "keys.logger.config: expected an object (handed to the plugin as JSON), got an array",
            "keys[\"odd key\"].maxBatchSize: expected a whole number of at least 1, got the number -1",
        ])
    }

    @Test func namesTheFileInEveryLineOfItsDescription() {
        let error = #expect(throws: ManifestError.self) { try parse(#"{"keys": {}}"#) }
        #expect(error?.description == "/etc/batchman/plugins.json: keys: expected at least one key")
    }

    @Test func requiresKeysAndAPluginWhereThereIsNoDefault() {
        #expect(problems(#"{"defaults": {}}"#) == ["keys: required: an object mapping each job key to {\"plugin\": ...}"])
        #expect(problems(#"{"keys": {"logger": {"frequency": 5}}}"#) == [
            "keys.logger.plugin: required: a plugin path or name such as \"EchoPlugin\" (there is no \"default\" key to fall back to)",
        ])
        #expect(problems(#"{"keys": {"default": {}}}"#) == ["keys.default.plugin: required: a plugin path or name such as \"EchoPlugin\""])
    }

    @Test func pointsAtTheLineAndColumnOfASyntaxError() {
        #expect(problems("{\n  \"keys\": {\n    \"a\": {\"plugin\": \"x\",}\n  }\n}") == [
            "line 3, column 25: not valid JSON: expected a string",
        ])
        #expect(problems("") == ["line 1, column 1: not valid JSON: expected a value"])
    }

    @Test func rejectsAFieldGivenTwice() {
        #expect(problems(#"{"keys": {"default": {"plugin": "a", "plugin": "b"}}}"#) == ["keys.default.plugin: given twice"])
    }

    @Test func explainsAMissingFile() {
        let error = #expect(throws: ManifestError.self) { try Manifest.load(path: "/nonexistent/plugins.json") }
        #expect(error?.description.hasPrefix("/nonexistent/plugins.json: file: no such file") == true)
    }
}

@Suite struct ManifestResilienceOptionTests {
    func parse(_ text: String) throws(ManifestError) -> Manifest {
        try Manifest.parse(Data(text.utf8), path: "plugins.json")
    }

    @Test func readsEveryOptionInDefaultsAndPerKey() throws {
        let manifest = try parse("""
            {"defaults": {"maxAttempts": 3, "initialBackoff": 50, "maxBackoff": 2000, "backoffMultiplier": 1.5,
                          "timeout": 30000, "maxBatchBytes": 65536, "maxInFlight": 2, "maxPending": 1000,
                          "overflow": "reject", "minBatchInterval": 100, "maxPendingTotal": 5000, "shutdownTimeout": 10000},
             "keys": {"default": {"plugin": "Echo"}, "bulk": {"plugin": "Echo", "maxPending": 10, "overflow": "block", "timeout": 500}}}
            """)
        let config = manifest.batchmanConfig()
        #expect(config.maxPendingTotal == 5000)
        #expect(config.shutdownTimeout == .seconds(10))
        #expect(config.config(forKey: "other") == BatcherConfig(
            maxAttempts: 3, initialBackoff: .milliseconds(50), maxBackoff: .seconds(2), backoffMultiplier: 1.5,
            timeout: .seconds(30), maxBatchBytes: 65536, maxInFlight: 2, maxPending: 1000, overflow: .reject,
            minBatchInterval: .milliseconds(100)))
        let bulk = config.config(forKey: "bulk")
        #expect(bulk.maxPending == 10)
        #expect(bulk.overflow == .block)
        #expect(bulk.timeout == .milliseconds(500))
        #expect(bulk.maxAttempts == 3, "falls back to defaults")
    }

    @Test func keepsTheDefaultEntrysOptionalLimitsOutOfNamedKeys() throws {
        let manifest = try parse(#"{"keys": {"default": {"plugin": "Echo", "timeout": 100}, "named": {"plugin": "Echo"}}}"#)
        #expect(manifest.batchmanConfig().config(forKey: "named").timeout == nil)
        #expect(manifest.batchmanConfig().config(forKey: "unnamed").timeout == .milliseconds(100))
    }

    @Test func explainsBadOptionValues() {
        do {
            _ = try parse("""
                {"defaults": {"overflow": "drop", "backoffMultiplier": 0.5, "initialBackoff": -1},
                 "keys": {"default": {"plugin": "Echo", "maxPendingTotal": 5}}}
                """)
            Issue.record("accepted")
        } catch {
            #expect(error.problems.map(\.description) == [
                "defaults.overflow: expected \"block\" or \"reject\", got the string \"drop\"",
                "defaults.backoffMultiplier: expected a number of at least 1, got the number 0.5",
                "defaults.initialBackoff: expected a number of milliseconds of at least 0, got the number -1",
                "keys.default.maxPendingTotal: applies to the whole host, not one key; set it in \"defaults\"",
            ])
        }
    }
}

/// `check` refuses everything `run` refuses, and says why a file cannot be read.
@Suite struct ManifestCheckParityTests {
    @Test(arguments: [
        (#""initialBackoff": 500, "maxBackoff": 100"#, "keys.k: Backoff must satisfy 0 <= initialBackoff <= maxBackoff"),
        (#""frequency": 1e-9"#, "keys.k.frequency: 1e-9 milliseconds is less than a nanosecond"),
    ])
    func checkRefusesWhatRunRefuses(settings: String, message: String) async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"k": {"plugin": "\#(Products.plugin("EchoPlugin"))", \#(settings)}}"#)

        for command in ["check", "run"] {
            let result = try await run(Products.batchman, [command, manifest])
            #expect(result.status == 78, "\(command): \(result.errorOutput)")
            #expect(result.errorOutput.contains(message), "\(command): \(result.errorOutput)")
        }
    }

    @Test func explainsADirectoryAndASymlinkLoopAsManifests() async throws {
        let scratch = try Scratch()
        let loop = scratch.path("loop.json")
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: loop)

        let directory = try await run(Products.batchman, ["check", scratch.url.path])
        let looping = try await run(Products.batchman, ["check", loop])

        #expect(directory.status == 78)
        #expect(directory.errorOutput.contains("file: is a directory, not a manifest file"), "\(directory.errorOutput)")
        #expect(!directory.errorOutput.contains("Error Domain"))
        #expect(looping.status == 78)
        #expect(looping.errorOutput.contains("file: is a symbolic link loop"), "\(looping.errorOutput)")
    }
}
