import Foundation
import Synchronization

/// H5: clients of `batchman run --listen unix:PATH`, each on its own connection, sending jobs
/// and reading their results at once: the host's throughput as a service, and each job's round
/// trip from the client's send to the client's receipt of its result.
enum SocketWorkload {
    struct Outcome {
        var seconds: Double
        /// Round trips in microseconds, one per job.
        var roundTrips: [Double]
        var peakMiB: Double?
    }

    /// Starts the host on `manifest`, runs `clients` clients of `jobs / clients` jobs each at once,
    /// then stops the host with SIGTERM.
    static func run(batchman: String, manifest: String, clients: Int, jobs: Int, in folder: URL) throws -> Outcome {
        let socketPath = folder.appendingPathComponent("h5-\(getpid()).sock").path
        try? FileManager.default.removeItem(atPath: socketPath)
        let errorPath = folder.appendingPathComponent("h5-host.err").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let arguments = [batchman, "run", manifest, "--listen", "unix:\(socketPath)"]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, batchman, &actions, nil, argv, environ) == 0 else { throw CocoaError(.executableLoad) }
        // Listening once the log says so (bounded: a host that fails to start ends the wait).
        for _ in 0..<10_000 {
            if let log = try? String(contentsOfFile: errorPath, encoding: .utf8), log.contains("listening on") { break }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { throw CocoaError(.executableLoad) }
            usleep(1000)
        }
        let perClient = jobs / clients
        let done = DispatchSemaphore(value: 0)
        let trips = Mutex<[[Double]]>([])
        let start = ContinuousClock.now
        for client in 0..<clients {
            Thread.detachNewThread {
                let roundTrips = oneClient(socketPath: socketPath, number: client, jobs: perClient)
                trips.withLock { $0.append(roundTrips) }
                done.signal()
            }
        }
        for _ in 0..<clients { done.wait() }
        let elapsed = seconds(since: start)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let log = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
        let peak = log.split(separator: "peakRSS=").last.flatMap { Double($0.prefix { $0 != "M" }) }
        return Outcome(seconds: elapsed, roundTrips: trips.withLock { $0.flatMap { $0 } }, peakMiB: peak)
    }

    /// One client: sends its jobs in chunks of 100 lines (the time of each chunk's send is its
    /// jobs' start) while a second thread reads the results; returns each job's round trip.
    private static func oneClient(socketPath: String, number: Int, jobs: Int) -> [Double] {
        let socket = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8) + [0]) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(connected == 0, "H5: cannot connect to \(socketPath): errno \(errno)")
        let chunk = 100
        let origin = ContinuousClock.now
        let sentAt = SendTimes(count: jobs / chunk + 1)
        let sent = Atomic<Int>(0)
        Thread.detachNewThread {
            var lines: [UInt8] = []
            for first in stride(from: 0, to: jobs, by: chunk) {
                lines.removeAll(keepingCapacity: true)
                for index in first..<min(jobs, first + chunk) {
                    lines += Array(#"{"key":"key-\#(index % 4)","id":"\#(index)","payload":{"user":\#(index % 9973),"client":\#(number),"ms":\#(index % 997)}}"#.utf8)
                    lines.append(UInt8(ascii: "\n"))
                }
                sentAt.times[first / chunk] = microseconds(since: origin)
                sent.store(first / chunk + 1, ordering: .releasing)
                var offset = 0
                while offset < lines.count {
                    let written = lines.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                    precondition(written > 0, "H5: send failed: errno \(errno)")
                    offset += written
                }
            }
            shutdown(socket, Int32(SHUT_WR))
        }
        var roundTrips: [Double] = []
        roundTrips.reserveCapacity(jobs)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var pending: [UInt8] = []
        let idField = Array(#""id":""#.utf8)
        while roundTrips.count < jobs {
            let count = Glibc.read(socket, &buffer, buffer.count)
            guard count > 0 else { break }
            let now = microseconds(since: origin)
            pending += buffer[..<count]
            var lineStart = 0
            while let newline = pending[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                if let id = Self.id(in: pending[lineStart..<newline], field: idField) {
                    _ = sent.load(ordering: .acquiring)
                    roundTrips.append(now - sentAt.times[id / chunk])
                }
                lineStart = newline + 1
            }
            pending.removeFirst(lineStart)
        }
        precondition(roundTrips.count == jobs, "H5: client \(number) got \(roundTrips.count) of \(jobs) results")
        return roundTrips
    }

    /// Microseconds since the client's start at which each chunk was sent.
    private final class SendTimes: @unchecked Sendable {
        // @unchecked: the sender writes a chunk's time, then publishes it with a releasing store
        // before sending the chunk; the reader reads it only for a result of that chunk, after
        // an acquiring load: a result cannot come before its job was sent.
        var times: [Double]
        init(count: Int) { times = [Double](repeating: 0, count: count) }
    }

    /// The numeric id of a result line.
    private static func id(in line: ArraySlice<UInt8>, field: [UInt8]) -> Int? {
        guard let start = line.firstRange(of: field)?.upperBound else { return nil }
        var value = 0
        for byte in line[start...] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func microseconds(since origin: ContinuousClock.Instant) -> Double {
        let elapsed = origin.duration(to: .now)
        return Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
    }
}
