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

    @Test func everyKnownInputLineKeepsTheScannersPromises() throws {
        let inputs = Self.inputs("jobline")
        #expect(inputs.count >= 10, "the seed corpus is there")
        for input in inputs {
            let bytes = try Data(contentsOf: input)
            let broken = bytes.withUnsafeBytes { ParserChecks.jobLine($0.bindMemory(to: UInt8.self)) }
            #expect(broken == nil, "\(input.lastPathComponent): \(broken ?? "")")
        }
    }

    @Test func everyKnownManifestKeepsTheReadersPromises() throws {
        let inputs = Self.inputs("manifest")
        #expect(inputs.count >= 5, "the seed corpus is there")
        for input in inputs {
            let broken = ParserChecks.manifest(try Data(contentsOf: input))
            #expect(broken == nil, "\(input.lastPathComponent): \(broken ?? "")")
        }
    }
}
