/// The jobs `batchman plugin-test --jobs FILE` runs through a plugin: the author's own, as
/// NDJSON lines in the format `batchman run` reads (`{"key","id","payload"}`; the key is the
/// check's, whatever the line says). Without a file, the checks make their own.
struct PluginTestJobs: Equatable, Sendable {
    struct Job: Equatable, Sendable {
        var id: String
        var payload: [UInt8]
    }

    let jobs: [Job]
    /// Where they came from, for the report: the file, or "synthetic".
    let source: String

    /// The most jobs a file may hold: a check calls every one, in one process.
    static let maxJobs = 100_000

    /// Reads `path`; a clear error names the file and the line that is not a job.
    static func read(_ path: String) -> Result<PluginTestJobs, HostError> {
        let bytes: [UInt8]
        switch FileIO.readAll(path) {
        case .success(let read): bytes = read
        case .failure(let error): return .failure(HostError(.noInput, "--jobs \(path): cannot be read: \(error)"))
        }
        var jobs: [Job] = []
        var number = 0
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let parsed = Array(line).withUnsafeBufferPointer { JobLine.parse($0) }
            switch parsed {
            case .blank:
                continue
            case .job(_, let id, let payload):
                let start = line.startIndex
                jobs.append(Job(id: id, payload: Array(line[(start + payload.lowerBound)..<(start + payload.upperBound)])))
            case .invalid(let message, _, _):
                return .failure(HostError(.dataError, "--jobs \(path): line \(number) is not a job: \(message); "
                                          + #"each line is {"key":"k","id":"1","payload":...}, as batchman run reads them"#))
            }
            guard jobs.count <= maxJobs else {
                return .failure(HostError(.dataError, "--jobs \(path): more than \(maxJobs) jobs; give a sample of your jobs"))
            }
        }
        guard !jobs.isEmpty else { return .failure(HostError(.dataError, "--jobs \(path): no jobs in it")) }
        return .success(PluginTestJobs(jobs: jobs, source: path))
    }

    /// The synthetic jobs the checks make when no file is given.
    static let synthetic = PluginTestJobs(
        jobs: (0..<100).map { Job(id: "\($0)", payload: Array(#"{"n":\#($0),"text":"the quick brown fox"}"#.utf8)) }, source: "synthetic")

    var isSynthetic: Bool { source == "synthetic" }

    /// The payload of the `index`th job of a batch made of these jobs, cycling through them.
    func payload(_ index: Int) -> [UInt8] { jobs[index % jobs.count].payload }
}
