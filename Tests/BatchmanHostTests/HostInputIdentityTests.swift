import BatchmanTesting
import Foundation
import Testing

/// Ids and keys are bytes: compared byte for byte and returned as sent.
@Suite(.timeLimit(.minutes(5)))
struct HostInputIdentityTests {
    static let echo = Products.plugin("EchoPlugin")
    static let composed = "caf\u{E9}"          // é as one code point
    static let decomposed = "cafe\u{301}"      // e + combining acute: canonically equal, other bytes

    func runLines(_ lines: [String]) async throws -> [ResultLine] {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Self.echo)"}}"#)
        let host = try HostProcess(["run", manifest])
        host.send(lines)
        let (status, results) = try await host.finish()
        #expect(status == 0)
        return results
    }

    @Test func keepsCanonicallyEquivalentIdsApartAndReturnsTheirBytes() async throws {
        let results = try await runLines([HostRunTests.job("k", Self.composed), HostRunTests.job("k", Self.decomposed)])

        #expect(results.count == 2)
        #expect(results.allSatisfy { $0.status == "completed" }, "\(results.map(\.text))")
        let ids = results.compactMap(\.id).map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(ids == [Array(Self.composed.utf8), Array(Self.decomposed.utf8)].sorted { $0.lexicographicallyPrecedes($1) })
    }

    @Test func keepsCanonicallyEquivalentKeysInSeparateBatchesAndInstances() async throws {
        let scratch = try Scratch()
        let manifest = try scratch.manifest(#"{"default": {"plugin": "\#(Products.plugin("BatchmanTestPlugin"))", "debug": true}}"#)
        let host = try HostProcess(["run", manifest])
        host.send([HostRunTests.job(Self.composed, "1"), HostRunTests.job(Self.decomposed, "1")])
        let (status, results) = try await host.finish()

        #expect(status == 0)
        #expect(results.count == 2)
        #expect(results.allSatisfy { $0.status == "completed" })
        #expect(Set(results.compactMap(\.batchId)).count == 2, "one batch per key")
        let created = host.stderr.elements.filter { $0.contains("test plugin instance created") }
        #expect(created.count == 2, "one per spelling, and none for the unused default key: \(created)")
        #expect(Set(results.compactMap(\.key).map { Array($0.utf8) }) == [Array(Self.composed.utf8), Array(Self.decomposed.utf8)])
    }

    @Test func refusesALoneSurrogateInAnIdInsteadOfMergingIt() async throws {
        let results = try await runLines([#"{"key":"k","id":"a\ud800","payload":1}"#, #"{"key":"k","id":"a\udc00","payload":1}"#])

        #expect(results.count == 2)
        #expect(results.allSatisfy { $0.errorReason == "invalid_input" })
        #expect(results.first?.errorMessage?.contains(#""id" is not valid: lone surrogate \ud800 is not valid Unicode"#) == true,
                "\(results.map(\.text))")
    }

    @Test func readsFieldNamesWrittenWithEscapes() async throws {
        let results = try await runLines([#"{"k\u0065y":"k","\u0069d":"1","p\u0061yload":{"a":1}}"#])

        #expect(results.count == 1)
        #expect(results.first?.status == "completed", "\(results.map(\.text))")
        #expect(results.first?.resultJSON == #"{"a":1}"#)
    }
}
