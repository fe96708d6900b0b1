// libFuzzer target for what a client of `--http` can send: request heads, built by Fuzz/run
// together with the host's sources. The checks (ParserChecks.httpRequest) are the ones
// FuzzRegressionTests replays.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let broken = ParserChecks.httpRequest(UnsafeBufferPointer(start: data, count: size)) { fatalError(broken) }
    return 0
}
