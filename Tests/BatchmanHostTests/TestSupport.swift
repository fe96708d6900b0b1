import Batchman
import BatchmanTesting
import Foundation
import Synchronization
import Testing

/// Where `swift build` put the `batchman` executable and the plugins: beside the test bundle.
enum Products {
    static let directory: URL = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var folder = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // The test binary may sit inside an .xctest bundle folder.
        if folder.pathExtension == "xctest" { folder.deleteLastPathComponent() }
        return folder
    }()

    static var batchman: String { directory.appendingPathComponent("batchman").path }
    static func plugin(_ name: String) -> String { directory.appendingPathComponent("lib\(name).so").path }

    /// The package's root folder (for the README, examples and fixtures).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let header = packageRoot.appendingPathComponent("Sources/CBatchmanPlugin/include").path
}

/// A scratch folder for one test's manifest, plugins and files.
///
/// Removed when the test process exits, not when the test ends: a host or a worker a test
/// started (or killed on purpose) may still hold its files. `BATCHMAN_KEEP_SCRATCH=1` keeps them,
/// to look at after a failure.
struct Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("batchman-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        Self.removeAtExit(url.path)
    }

    private static let made = Mutex<[String]?>(nil)

    private static func removeAtExit(_ path: String) {
        guard ProcessInfo.processInfo.environment["BATCHMAN_KEEP_SCRATCH"] != "1" else { return }
        let first = made.withLock { made -> Bool in
            guard made != nil else {
                made = [path]
                return true
            }
            made!.append(path)
            return false
        }
        guard first else { return }
        atexit {
            for path in Scratch.made.withLock({ $0 ?? [] }) { try? FileManager.default.removeItem(atPath: path) }
        }
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
        return path(name)
    }

    /// Writes a manifest whose `keys` are given as JSON text.
    @discardableResult
    func manifest(_ keys: String, defaults: String = #"{"frequency": 60000, "maxBatchSize": 10}"#) throws -> String {
        try write("plugins.json", #"{"defaults": \#(defaults), "keys": \#(keys)}"#)
    }

    /// Compiles C source into `lib<name>.so` here with plain `cc`, as a plugin author would:
    /// strict C99 with warnings as errors, unless the source is broken on purpose.
    @discardableResult
    func compilePlugin(_ name: String, source: String, defines: [String] = [], strict: Bool = true) async throws -> String {
        let output = path("lib\(name).so")
        let warnings = strict ? ["-Wall", "-Wextra", "-Werror"] : []
        let result = try await run("/usr/bin/env", ["cc", "-shared", "-fPIC", "-std=c99", "-I", Products.header] + warnings
                             + defines.map { "-D\($0)" } + [source, "-o", output])
        guard result.status == 0 else { throw CompileFailure(output: result.errorOutput) }
        return output
    }

    struct CompileFailure: Error, CustomStringConvertible {
        let output: String
        var description: String { "cc failed: \(output)" }
    }
}

/// Runs a command to completion and returns its exit status and output, on a thread of its
/// own: waiting for a process must never hold one of the cooperative pool's threads (two, on
/// two cores), or every other test waits behind it.
func run(
    _ executable: String, _ arguments: [String], input: String = "", directory: String? = nil
) async throws -> (status: Int32, output: String, errorOutput: String) {
    try await offThePool { try runBlocking(executable, arguments, input: input, directory: directory) }
}

/// Runs blocking work (waiting for a process, reading a pipe to its end) on a thread of its
/// own and returns what it returned.
func offThePool<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// Runs a command to completion on the calling thread (see ``run(_:_:input:directory:)``).
func runBlocking(
    _ executable: String, _ arguments: [String], input: String = "", directory: String? = nil
) throws -> (status: Int32, output: String, errorOutput: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let stdout = Pipe(), stderr = Pipe(), stdin = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = stdin
    try process.run()
    // Standard error is read on a thread of its own: a compiler that fills that pipe while the
    // test reads standard output would otherwise never finish.
    let errorOutput = ErrorOutput()
    Thread.detachNewThread {
        errorOutput.data = stderr.fileHandleForReading.readDataToEndOfFile()
        errorOutput.done.signal()
    }
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    errorOutput.done.wait()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errorOutput.data, as: UTF8.self))
}

/// A process's standard error, read by another thread.
private final class ErrorOutput: @unchecked Sendable {
    // @unchecked: `data` is written once by the reading thread before `done` is signalled, and
    // read only after waiting for it.
    var data = Data()
    let done = DispatchSemaphore(value: 0)
}

/// One line of `batchman run`'s output.
struct ResultLine: Decodable, Sendable {
    let key: String?
    let id: String?
    let status: String
    let errorReason: String?
    let errorMessage: String?
    let batchId: UInt64?
    let attempts: Int
    let submittedAt: String
    let completedAt: String
    let line: Int?
    /// The whole line as written.
    var text: String = ""

    enum CodingKeys: String, CodingKey {
        case key, id, status, errorReason, errorMessage, batchId, attempts, submittedAt, completedAt, line
    }

    /// The `result` field re-encoded with sorted keys, for comparing.
    var resultJSON: String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as? [String: Any],
              let result = object["result"],
              let data = try? JSONSerialization.data(withJSONObject: result, options: [.sortedKeys, .fragmentsAllowed]) else { return "?" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses many lines on a thread of their own: tens of thousands of JSON decodes (minutes
    /// under AddressSanitizer) must not hold a thread of the cooperative pool the other tests share.
    static func parse(_ lines: [String]) async throws -> [ResultLine] {
        try await offThePool { try lines.map(ResultLine.parse) }
    }

    static func parse(_ text: String) throws -> ResultLine {
        var line = try JSONDecoder().decode(ResultLine.self, from: Data(text.utf8))
        line.text = text
        return line
    }
}

/// A running `batchman` whose input we write and whose output lines we collect as they come.
final class HostProcess: Sendable {
    let stdout = RecordLog<String>()
    let stderr = RecordLog<String>()
    /// ``kill(afterLines:)``'s threshold, checked by the thread that reads standard output.
    private let killAt = KillThreshold()

    private final class KillThreshold: Sendable {
        let count = Mutex<Int?>(nil)
    }
    private let exit = RecordLog<Int32>()
    private let outputClosed = RecordLog<Void>()
    private let process: Process
    private let input: FileHandle
    /// Standard output's read end when the test reads it itself (`readsOutput: false`).
    let unreadOutput: FileHandle?

    /// Starts `batchman` with `arguments`.
    /// - Parameters:
    ///   - standardInput: a file to read instead of a pipe the test writes.
    ///   - readsOutput: false leaves standard output unread (a stalled consumer) until the test
    ///     reads ``unreadOutput`` itself.
    ///   - listingInheritedDescriptorsIn: write the numbers of the descriptors the host
    ///     inherits into this file before it starts (Foundation's `Process` leaks a socket of its
    ///     own into every child, which it watches to see the child end: it must stay open).
    init(
        _ arguments: [String], directory: String? = nil, standardInput: FileHandle? = nil, readsOutput: Bool = true,
        listingInheritedDescriptorsIn inheritedList: String? = nil, environment: [String: String] = [:], executable: String? = nil
    ) throws {
        let process = Process()
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let inheritedList {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", #"ls /proc/$$/fd > "$0"; exec "$@""#, inheritedList, Products.batchman] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable ?? Products.batchman)
            process.arguments = arguments
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = standardInput ?? stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let exit = self.exit
        process.terminationHandler = { exit.append($0.terminationStatus) }
        self.process = process
        self.input = stdin.fileHandleForWriting
        self.unreadOutput = readsOutput ? nil : stdout.fileHandleForReading
        try process.run()
        let outputClosed = self.outputClosed
        if readsOutput {
            let killAt = self.killAt
            let pid = process.processIdentifier
            Self.collectLines(from: stdout.fileHandleForReading, into: self.stdout, onLine: { count in
                if killAt.count.withLock({ $0 == count }) { Glibc.kill(pid, SIGKILL) }
            }) { outputClosed.append(()) }
        } else {
            outputClosed.append(())
        }
        let errorLog = self.stderr
        Self.collectLines(from: stderr.fileHandleForReading, into: self.stderr) { errorLog.append(Self.endOfOutput) }
    }

    func send(_ lines: [String]) {
        input.write(Data(lines.map { $0 + "\n" }.joined().utf8))
    }

    /// Writes `lines` from a thread of its own, as far as the host reads them: it stops (and
    /// closes its copy of the pipe) once the host has gone, so a host that stopped reading
    /// never blocks the test.
    func feed(_ lines: [String]) {
        Glibc.signal(SIGPIPE, SIG_IGN)  // a host that is gone is an error from write, not our death
        let writer = dup(input.fileDescriptor)
        let bytes = Array(lines.map { $0 + "\n" }.joined().utf8)
        Thread.detachNewThread {
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { Glibc.write(writer, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 { break }
                offset += written
            }
            close(writer)
        }
    }

    func closeInput() {
        try? input.close()
    }

    var processIdentifier: Int32 { process.processIdentifier }

    /// The process that runs the host's work (the supervised child of the `batchman` the test
    /// started): the one whose descriptors, threads and workers a test looks at. Waits for it
    /// to exist only as long as the supervisor takes to start it.
    var hostProcessIdentifier: Int32 {
        let supervisor = process.processIdentifier
        for _ in 0..<10_000 {
            if let child = Self.child(of: supervisor, running: "__host") { return child }
            if !process.isRunning { break }
            sched_yield()
        }
        return supervisor
    }

    /// A child of `parent` whose second argument is `subcommand`.
    static func child(of parent: Int32, running subcommand: String) -> Int32? {
        let processes = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
        return processes.first { pid in
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  status.split(separator: "\n").contains(where: { $0 == "PPid:\t\(parent)" }),
                  let line = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else { return false }
            let arguments = line.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return arguments.count >= 2 && arguments[1] == subcommand
        }
    }

    func signal(_ number: Int32) {
        Glibc.kill(process.processIdentifier, number)
    }

    /// The last line of ``stderr`` once the process has closed it.
    static let endOfOutput = "<end of standard error>"

    /// Waits until a line of standard error contains `text` and returns it, or returns nil once
    /// standard error has ended without one.
    @discardableResult
    func waitForLog(containing text: String, skipping skipped: Int = 0) async -> String? {
        var seen = skipped
        while !Task.isCancelled {
            let lines = await stderr.wait(forCount: seen + 1)
            for line in lines.dropFirst(seen) {
                if line.contains(text) { return line }
                if line == Self.endOfOutput { return nil }
            }
            seen = lines.count
        }
        return nil
    }

    /// Asks for the statistics line (SIGUSR1) until it shows at least `minimum` accepted jobs.
    func waitUntilAccepted(atLeast minimum: Int) async {
        while true {
            let seen = stderr.elements.count
            signal(SIGUSR1)
            guard let line = await waitForLog(containing: "stats: accepted=", skipping: seen) else { return }
            let count = line.split(separator: "accepted=").last?.split(separator: " ").first.flatMap { Int($0) } ?? 0
            if count >= minimum { return }
        }
    }

    /// Asks for the statistics line (SIGUSR1) until it shows `accepted` jobs.
    func waitUntilAccepted(_ accepted: Int) async {
        while true {
            let seen = stderr.elements.count
            signal(SIGUSR1)
            guard let line = await waitForLog(containing: "stats: accepted=", skipping: seen) else { return }
            if line.contains("stats: accepted=\(accepted) ") { return }
        }
    }

    /// Every whole result line the host wrote, parsed. A kill -9 can cut the last line short (a
    /// write of more than the pipe's atomic size): a consumer drops a last line that is not whole.
    func wholeResults() async throws -> [ResultLine] {
        var lines = stdout.elements
        if let last = lines.last, (try? ResultLine.parse(last)) == nil { lines.removeLast() }
        return try await ResultLine.parse(lines)
    }

    /// The first `count` result lines, parsed.
    func results(count: Int) async throws -> [ResultLine] {
        let lines = Array(await stdout.wait(forCount: count).prefix(count))
        return try await ResultLine.parse(lines)
    }

    /// The exit status, once the process has ended and its output has been read to the end.
    func exitStatus() async -> Int32 {
        // A wait the time limit cancelled returns what there is: maybe nothing.
        guard let status = await exit.wait(forCount: 1).first else { return -1 }
        // The process may end before its last output is read: a test that reads `stdout` next
        // (after a kill -9, say) must see all of it.
        await outputClosed.wait(forCount: 1)
        return status
    }

    /// Sends SIGKILL as soon as standard output has `count` lines, from the thread that reads
    /// them: at that moment however busy the test's own threads are.
    func kill(afterLines count: Int) {
        killAt.count.withLock { $0 = count }
        if stdout.elements.count >= count { signal(SIGKILL) }
    }

    /// Closes input, waits for the exit and returns every result line.
    func finish() async throws -> (status: Int32, results: [ResultLine]) {
        closeInput()
        let status = await exitStatus()
        await outputClosed.wait(forCount: 1)
        return (status, try await ResultLine.parse(stdout.elements))
    }

    private static func collectLines(
        from handle: FileHandle, into log: RecordLog<String>, onLine: @escaping @Sendable (Int) -> Void = { _ in },
        onEnd: @escaping @Sendable () -> Void
    ) {
        Thread.detachNewThread {
            var pending = Data()
            var count = 0
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                pending.append(data)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    log.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                    count += 1
                    onLine(count)
                }
            }
            if !pending.isEmpty { log.append(String(decoding: pending, as: UTF8.self)) }
            onEnd()
        }
    }
}
