// libFuzzer target for what a plugin's worker process can send the host: frames and outcome
// logs, built by Fuzz/run together with the host's sources. The checks (ParserChecks.workerBytes)
// are the ones FuzzRegressionTests replays.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWorkerBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let broken = ParserChecks.workerBytes(UnsafeBufferPointer(start: data, count: size)) { fatalError(broken) }
    return 0
}
