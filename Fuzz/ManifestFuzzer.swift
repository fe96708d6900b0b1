// libFuzzer target for the manifest reader (Manifest.parse over JSONValue), built by Fuzz/run
// together with the host's and the core's sources. A manifest either parses, or is refused with
// at least one problem that names where it is; it never crashes.
import FoundationEssentials

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    do {
        let manifest = try Manifest.parse(Data(bytes: data, count: size), path: "fuzz.json")
        _ = manifest.batchmanConfig()
    } catch {
        precondition(!error.problems.isEmpty, "a refused manifest says why")
        precondition(error.problems.allSatisfy { !$0.path.isEmpty && !$0.message.isEmpty }, "every problem names where and what")
    }
    return 0
}
