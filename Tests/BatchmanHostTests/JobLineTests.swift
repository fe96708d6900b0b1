@testable import Batchman
@testable import BatchmanHost
import Foundation
import Testing

@Suite struct JobLineTests {
    func parse(_ line: String) -> JobLine {
        Array(line.utf8).withUnsafeBufferPointer { JobLine.parse($0) }
    }

    func payload(_ line: String) -> String? {
        guard case .job(_, _, let range) = parse(line) else { return nil }
        return String(decoding: Array(line.utf8)[range], as: UTF8.self)
    }

    @Test func readsKeyIdAndTheRawPayloadText() {
        let line = #"{"key":"logger","id":"42","payload":{"b": [1, 2.5e3, "x\"y"], "a": null}}"#
        guard case .job(let key, let id, _) = parse(line) else { Issue.record("not a job"); return }
        #expect(key == "logger")
        #expect(id == "42")
        #expect(payload(line) == #"{"b": [1, 2.5e3, "x\"y"], "a": null}"#)
    }

    @Test func acceptsFieldsInAnyOrderSkipsUnknownOnesAndDecodesEscapes() {
        let line = #" { "extra": {"nested": [true]}, "payload": 7, "id": "a\u00e9\n", "key": "k\/1" } "#
        #expect(parse(line) == .job(key: "k/1", id: "a\u{e9}\n", payload: 43..<44))
        #expect(payload(line) == "7")
    }

    @Test func treatsAnEmptyLineAsBlank() {
        #expect(parse("") == .blank)
        #expect(parse("  \t\r") == .blank)
    }

    @Test(arguments: [
        ("not json", "expected a JSON object like {\"key\":\"k\",\"id\":\"1\",\"payload\":{}}"),
        (#"[1,2]"#, "expected a JSON object like {\"key\":\"k\",\"id\":\"1\",\"payload\":{}}"),
        (#"{"key":"k","payload":1}"#, "missing \"id\" (a string)"),
        (#"{"id":"1","payload":1}"#, "missing \"key\" (a string)"),
        (#"{"key":"k","id":"1"}"#, "missing \"payload\" (any JSON value)"),
        (#"{"key":"k","id":42,"payload":1}"#, "\"id\" must be a string, got 42"),
        (#"{"key":"","id":"1","payload":1}"#, "\"key\" must not be empty"),
        (#"{"key":"k","id":"1","id":"2","payload":1}"#, "\"id\" is given twice"),
        (#"{"key":"k","id":"1","payload":{"a":}}"#, "not valid JSON: expected a value at byte 36"),
        (#"{"key":"k","id":"1","payload":01}"#, "not valid JSON: expected ',' or '}' at byte 32"),
        (#"{"key":"k","id":"1","payload":1} trailing"#, "unexpected text after the object at byte 34"),
        ("{\"key\":\"k\",\"id\":\"1\",\"payload\":\"tab\there\"}", "not valid JSON: control character in a string (escape it) at byte 35"),
    ])
    func explainsWhatIsWrongWithABadLine(line: String, message: String) {
        guard case .invalid(let found, _, _) = parse(line) else {
            Issue.record("accepted \(line)")
            return
        }
        #expect(found == message)
    }

    @Test func keepsTheKeyAndIdItReadBeforeTheProblem() {
        #expect(parse(#"{"key":"k","id":"7","payload":[1,}"#) == .invalid(message: "not valid JSON: expected a value at byte 34", key: "k", id: "7"))
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = Array(#"{"key":"k","id":""#.utf8) + [0xC3, 0x28] + Array(#"","payload":1}"#.utf8)
        let parsed = bytes.withUnsafeBufferPointer { JobLine.parse($0) }
        #expect(parsed == .invalid(message: "not valid JSON: invalid UTF-8 at byte 18", key: "k", id: nil))
    }
}

@Suite struct ResultEncoderTests {
    func validJSON(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { JSONScanner.isValidJSON($0) }
    }

    @Test func escapesAnythingIntoAValidJSONString() {
        let nasty: [UInt8] = [UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x0A, 0x01, 0xFF, 0xC3, 0xA9, 0xE2, 0x82]
        var output: [UInt8] = []
        nasty.withUnsafeBufferPointer { JSONStringEscaper.append($0, to: &output) }
        #expect(String(decoding: output, as: UTF8.self) == "\"\\\"\\\\\\n\\u0001\u{FFFD}\u{e9}\u{FFFD}\u{FFFD}\"")
        #expect(validJSON(output))
    }

    @Test func formatsTimestampsAsISO8601UTCWithMilliseconds() {
        for (seconds, expected) in [(0.0, "1970-01-01T00:00:00.000Z"), (1_795_910_400.5, "2026-11-29T00:00:00.500Z"),
                                     (951_782_400.0, "2000-02-29T00:00:00.000Z"), (-1.0, "1969-12-31T23:59:59.000Z")] {
            var output: [UInt8] = []
            ISO8601Timestamp.append(Date(timeIntervalSince1970: seconds), to: &output)
            #expect(String(decoding: output, as: UTF8.self) == "\"\(expected)\"")
        }
    }

    @Test func formatsTimestampsTheSameThroughTheCacheAcrossSecondsDaysAndTheEpoch() {
        var cache = ISO8601Timestamp.Cache()
        for seconds in [1_795_910_399.998, 1_795_910_399.999, 1_795_910_400.0, 1_795_910_400.001, 1_795_910_400.5,
                        1_795_910_401.0, -0.001, -1.5, 0.0, 86_399.999, 86_400.0] {
            var cached: [UInt8] = []
            var fresh: [UInt8] = []
            ByteWriter.append(to: &cached, bound: ISO8601Timestamp.length) {
                ISO8601Timestamp.write(secondsSince1970: Date(timeIntervalSince1970: seconds).timeIntervalSince1970, cache: &cache, to: &$0)
            }
            ISO8601Timestamp.append(Date(timeIntervalSince1970: seconds), to: &fresh)
            #expect(cached == fresh, "\(seconds)")
        }
        var output: [UInt8] = []
        ByteWriter.append(to: &output, bound: ISO8601Timestamp.length) {
            ISO8601Timestamp.write(secondsSince1970: Date(timeIntervalSince1970: -1.5).timeIntervalSince1970, cache: &cache, to: &$0)
        }
        #expect(String(decoding: output, as: UTF8.self) == "\"1969-12-31T23:59:58.500Z\"")
    }

    @Test func writesIntegers() {
        for value: UInt64 in [0, 7, 10, 1234567890, .max] {
            var output: [UInt8] = [UInt8(ascii: "x")]
            ByteWriter.append(to: &output, bound: 20) { $0.write(decimal: value) }
            #expect(String(decoding: output, as: UTF8.self) == "x\(value)", "after what was there, and nothing of the bound left")
        }
    }

    @Test func aWriterThatWouldPassItsBoundStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            var output: [UInt8] = []
            ByteWriter.append(to: &output, bound: 3) { $0.write("four") }
        }
    }

    @Test func encodesABatchOfResultsWhateverTheirBytesAsValidJSONLines() throws {
        let invalidUTF8: [UInt8] = [0x61, 0xFF, 0x22, 0x5C, 0x0A, 0x01]
        let results: [JobResult<JobBytes, JobBytes>] = [
            JobResult.testResult(key: "k\"ey", id: "é\u{0}", result: Array("{\"a\":[1,2]}".utf8)[...]),
            JobResult.testResult(key: "k", id: "2", result: invalidUTF8[...]),
            JobResult.testResult(key: "k", id: String(repeating: "\\", count: 300), result: Array(repeating: UInt8(0x07), count: 1000)[...]),
        ]
        let lines = ResultEncoder.lines(of: results, replayed: true).split(separator: UInt8(ascii: "\n"))
        #expect(lines.count == 3)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
            #expect(object["replayed"] as? Bool == true)
        }
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0])) as? [String: Any])
        #expect(first["key"] as? String == "k\"ey" && first["id"] as? String == "é\u{0}")
        #expect((first["result"] as? [String: Any])?["a"] as? [Int] == [1, 2], "valid JSON is embedded as it is")
        let second = try #require(try JSONSerialization.jsonObject(with: Data(lines[1])) as? [String: Any])
        #expect(second["result"] as? String == "a\u{FFFD}\"\\\n\u{1}", "anything else becomes a string")
    }

    @Test func validatesJSONDocuments() {
        for valid in ["1", " {\"a\":[1,2,{}]} ", "\"x\"", "-0.5e-3", "true", "null", "\"\\ud83d\\ude00\""] {
            #expect(validJSON(Array(valid.utf8)), "\(valid)")
        }
        for invalid in ["", "01", "{", "[1,]", "nul", "1 2", "\"\\x\"", "{\"a\" 1}", "+1", ".5", "1."] {
            #expect(!validJSON(Array(invalid.utf8)), "\(invalid)")
        }
    }
}

@Suite struct HostCommandTests {
    @Test func parsesRunWithItsOptions() throws {
        var expected = RunOptions()
        expected.manifestPath = "m.json"
        expected.inputPath = "in.ndjson"
        expected.outputPath = "out.ndjson"
        expected.maxLineBytes = 100
        expected.workers = 3
        expected.maxPendingBytes = 4096
        let parsed = try HostCommand.parse(["run", "m.json", "--input", "in.ndjson", "--output", "out.ndjson", "--max-line-bytes", "100", "--workers", "3",
                                            "--max-pending-bytes", "4096"])
        #expect(parsed == .run(expected))
        #expect(try HostCommand.parse(["run"]) == .run(RunOptions()))
        #expect(try HostCommand.parse(["check"]) == .check(manifest: "plugins.json"))
        #expect(try HostCommand.parse(["--version"]) == .version)
        #expect(try HostCommand.parse(["--help"]) == .help(nil))
    }

    @Test(arguments: [
        (["run", "--help"], HostCommand.Verb.run), (["run", "m.json", "-h"], .run), (["check", "--help"], .check),
        (["plugin-test", "--help"], .pluginTest), (["spool", "check", "--help"], .spoolCheck), (["help", "run"], .run),
    ])
    func givesEachCommandItsOwnHelp(arguments: [String], verb: HostCommand.Verb) throws {
        #expect(try HostCommand.parse(arguments) == .help(verb))
        #expect(HostCommand.usage(for: verb).hasPrefix("Usage: batchman \(verb.rawValue)"))
    }

    @Test(arguments: [
        ([], "missing command: run, check, submit, nats setup, nats publish, plugin-test or spool check"),
        (["serve"], "unknown command \"serve\"; the commands are run, check, submit, nats setup, nats publish, plugin-test or spool check"),
        (["chek"], "unknown command \"chek\"; did you mean check?"),
        (["run", "--bogus"], "unknown option --bogus for run (batchman run --help lists them)"),
        (["run", "--wokers", "4"], "unknown option --wokers for run; did you mean --workers? (batchman run --help lists them)"),
        (["check", "--verbose"], "unknown option --verbose for check"),
        (["plugin-test", "lib.so", "--confg", "{}"], "unknown option --confg for plugin-test; did you mean --config?"),
        (["run", "--input"], "--input needs a value"),
        (["run", "--workers", "0"], "--workers needs a whole number from 1 to 1024, got 0"),
        (["run", "--workers", "40000"], "--workers needs a whole number from 1 to 1024, got 40000"),
        (["run", "a.json", "b.json"], "more than one manifest: a.json and b.json"),
        (["check", "a.json", "b.json"], "check takes one manifest, got a.json b.json"),
    ])
    func rejectsBadArgumentsAsUsageErrors(arguments: [String], message: String) {
        let error = #expect(throws: HostError.self) { try HostCommand.parse(arguments) }
        #expect(error?.exitCode == 64)
        #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
        #expect(error?.message.split(separator: "\n").count == 1, "one line, not the whole usage: \(error?.message ?? "")")
    }
}

extension JobResult where Payload == JobBytes, Output == JobBytes {
    /// A completed result of a job with `key` and `id`, as the host's sinks get them.
    static func testResult(key: String, id: String, result: JobBytes) -> Self {
        JobResult(job: Job(id: id, key: key, payload: Array("{}".utf8)[...]), status: .completed, result: result, errorReason: nil,
                  errorMessage: nil, batchId: 1, attempts: 1, completedAt: Date())
    }
}
