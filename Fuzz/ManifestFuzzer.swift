// libFuzzer target for the manifest reader, built by Fuzz/run together with the host's and
// the core's sources. The checks (ParserChecks.manifest) are the ones FuzzRegressionTests replays.
import FoundationEssentials

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let broken = ParserChecks.manifest(Data(bytes: data, count: size)) { fatalError(broken) }
    return 0
}
