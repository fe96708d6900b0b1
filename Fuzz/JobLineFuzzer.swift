// libFuzzer target for the NDJSON line scanner, built by Fuzz/run together with the host's
// sources. The checks (ParserChecks.jobLine) are the ones FuzzRegressionTests replays.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJobLine(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let broken = ParserChecks.jobLine(UnsafeBufferPointer(start: data, count: size)) { fatalError(broken) }
    return 0
}
