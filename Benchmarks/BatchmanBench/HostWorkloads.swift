import Batchman
import BatchmanHost
import Foundation

enum HostWorkloads {
    /// Where `swift build -c release` put `batchman` and the plugins: beside this executable.
    static let products = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        .deletingLastPathComponent()

    static func plugin(_ name: String) -> String { products.appendingPathComponent("lib\(name).so").path }

    /// Writes `lines` NDJSON jobs of about 100 bytes over `keys` keys; returns the file and its size.
    static func makeInput(lines: Int, keys: Int = 4, name: String = "jobs.ndjson", in folder: URL) throws -> (path: String, bytes: Int) {
        let path = folder.appendingPathComponent(name).path
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var bytes = 0
        var chunk = ""
        for index in 0..<lines {
            chunk += #"{"key":"key-\#(index % keys)","id":"\#(index)","payload":{"user":\#(index % 9973),"event":"page_view","ms":\#(index % 997)}}"# + "\n"
            if index % 10_000 == 9_999 || index == lines - 1 {
                let data = Data(chunk.utf8)
                bytes += data.count
                file.write(data)
                chunk = ""
            }
        }
        try file.close()
        return (path, bytes)
    }

    static func makeManifest(plugin: String, isolation: String = "none", instances: String = "perKey", frequency: Int = 10,
                             in folder: URL) throws -> String {
        let path = folder.appendingPathComponent("\(plugin)-\(isolation)-\(instances)-\(frequency).json").path
        let text = #"{"defaults": {"frequency": \#(frequency), "maxBatchSize": 1000, "isolation": "\#(isolation)", "instances": "\#(instances)"}, "keys": {"default": {"plugin": "\#(Self.plugin(plugin))"}}}"#
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// H2: W1 through a no-op C plugin instead of a Swift closure.
    static func cABIThroughput(jobs: Int) async throws -> Double {
        let loader = PluginLoader(manifestDirectory: products.path)
        let processor = try loader.load("NoopPlugin", forKey: "k").processor(forKey: "k")
        let batchman = try Batchman<JobBytes, JobBytes, ContinuousClock>(
            config: BatchmanConfig(frequency: .milliseconds(10), maxBatchSize: 1000)) { _ in processor }
        let payloads = (0..<1000).map { Array(String($0).utf8)[...] }
        let countdown = Countdown(jobs)
        let start = ContinuousClock.now
        for index in 0..<jobs {
            batchman.submit(id: CoreWorkloads.ids[index], key: "k", payload: payloads[index % 1000]) { _ in countdown.tick() }
        }
        await countdown.wait()
        let elapsed = seconds(since: start)
        await batchman.shutdown()
        return elapsed / Double(jobs) * 1e9
    }
}
