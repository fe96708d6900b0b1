import Foundation
import Testing

@testable import BatchmanNATS

/// Replays every seed and every input the NATS fuzzer ever found (Fuzz/corpus/nats,
/// Fuzz/regressions/nats) through the checks the fuzz target makes.
@Suite struct NATSFuzzRegressionTests {
    static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    @Test func everyKnownInputKeepsTheParsersPromises() throws {
        let inputs = ["corpus", "regressions"].flatMap { folder -> [URL] in
            let directory = Self.fuzz.appendingPathComponent(folder).appendingPathComponent("nats")
            return ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted().map { directory.appendingPathComponent($0) }
        }
        #expect(inputs.count >= 10, "the seed corpus is there")
        for input in inputs {
            let broken = try Data(contentsOf: input).withUnsafeBytes { NATSParserChecks.check($0.bindMemory(to: UInt8.self)) }
            #expect(broken == nil, "\(input.lastPathComponent): \(broken ?? "")")
        }
    }
}
