@testable import BatchmanHost
import Foundation
import Testing

/// Replays every fuzz seed and every input a fuzzer ever found (Fuzz/corpus, Fuzz/regressions)
/// through the checks the fuzz targets make, so a fixed crash stays fixed.
@Suite struct FuzzRegressionTests {
    static let fuzz = Products.packageRoot.appendingPathComponent("Fuzz")

    static func inputs(_ target: String) -> [URL] {
        ["corpus", "regressions"].flatMap { folder -> [URL] in
            let directory = fuzz.appendingPathComponent(folder).appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return names.sorted().map { directory.appendingPathComponent($0) }
        }
    }

    /// Runs `check` on every known input of `target` (at least `seeds` of them).
    static func replay(_ target: String, seeds: Int, _ check: (Data) -> String?) throws {
        let inputs = Self.inputs(target)
        #expect(inputs.count >= seeds, "the seed corpus is there")
        for input in inputs {
            let broken = check(try Data(contentsOf: input))
            #expect(broken == nil, "\(input.lastPathComponent): \(broken ?? "")")
        }
    }

    @Test func everyKnownInputLineKeepsTheScannersPromises() throws {
        try Self.replay("jobline", seeds: 10) { bytes in bytes.withUnsafeBytes { ParserChecks.jobLine($0.bindMemory(to: UInt8.self)) } }
    }

    @Test func everyKnownWorkerInputKeepsTheBoundarysPromises() throws {
        try Self.replay("worker", seeds: 10) { bytes in bytes.withUnsafeBytes { ParserChecks.workerBytes($0.bindMemory(to: UInt8.self)) } }
    }

    @Test func everyKnownHTTPRequestKeepsTheParsersPromises() throws {
        try Self.replay("http", seeds: 10) { bytes in bytes.withUnsafeBytes { ParserChecks.httpRequest($0.bindMemory(to: UInt8.self)) } }
    }

    @Test func everyKnownManifestKeepsTheReadersPromises() throws {
        try Self.replay("manifest", seeds: 5, ParserChecks.manifest)
    }
}
