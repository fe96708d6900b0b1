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
