// libFuzzer target for what a NATS server (or anything posing as one) can send the client:
// built by Fuzz/run from Sources/BatchmanNATS alone. The checks (NATSParserChecks) are the ones
// NATSFuzzRegressionTests replays.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATSServerBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let broken = NATSParserChecks.check(UnsafeBufferPointer(start: data, count: size)) { fatalError(broken) }
    return 0
}
