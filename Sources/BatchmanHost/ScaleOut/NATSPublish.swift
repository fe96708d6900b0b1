import Batchman
import BatchmanNATS
import Dispatch
import Glibc
import Synchronization

/// What `batchman nats publish` was asked to do.
public struct NATSPublishOptions: Equatable, Sendable {
    public var servers: [NATSServerURL]
    public var inputPath: String?
    public var prefix = "jobs"

    public init(servers: [NATSServerURL]) { self.servers = servers }
}

/// `batchman nats publish`: NDJSON jobs in, each published to its partition's subject
/// (`jobs.<p>.<key token>`) with `Nats-Msg-Id: <key>/<id>`, many at once, each retried until the
/// stream has stored it. A job published twice within the stream's duplicate window (two
/// minutes) is stored once.
public enum NATSPublish {
    /// Returns the exit status: 0 every job stored, 65 some lines were not jobs (the others
    /// are stored), 66 the input cannot be read, 69 no server, 70 the stream refused a job.
    public static func run(_ options: NATSPublishOptions, logger: BatchmanLogger = .standardError) throws(HostError) -> Int32 {
        let input: Int32
        if let path = options.inputPath, path != "-" {
            guard case .success(let opened) = Syscall.open(path, O_RDONLY) else {
                logger.log(.error, "nats publish: --input \(path): \(Errno.current)")
                return 66
            }
            input = opened
        } else {
            input = STDIN_FILENO
        }
        defer { if input != STDIN_FILENO { close(input) } }
        let layout = ScaleOutLayout(prefix: options.prefix)
        let connection = try ScaleOutConnection.connect(options.servers, name: "batchman nats publish", logger: logger, waitingSeconds: 10)
        defer { connection.close() }
        let jetStream = JetStream(connection)
        let config = try layout.readConfig(try ScaleOutLayout.openBucket(jetStream))
        let publisher = JetStreamPublisher(jetStream)
        defer { publisher.close() }
        let tally = Tally()
        var splitter = LineSplitter(maxLineBytes: 1 << 20)
        var invalid = 0
        var readFailed = false
        func publish(_ line: LineSplitter.Line) {
            switch line {
            case .line(let number, let bytes, _):
                switch bytes.withUnsafeBufferPointer({ JobLine.parse($0) }) {
                case .job(let key, let id, _):
                    let partition = SubjectToken.partition(ofKey: key, partitions: config.partitions)
                    tally.sent()
                    publisher.publish(layout.jobSubject(partition: partition, key: key), msgId: ScaleOutLayout.messageId(key: key, id: id),
                                      payload: Array(bytes)) { tally.finished($0, line: number, logger: logger) }
                case .blank:
                    break
                case .invalid(let message, _, _):
                    invalid += 1
                    logger.log(.error, "nats publish: line \(number): \(message); not published")
                }
            case .tooLong(let number, let length, _):
                invalid += 1
                logger.log(.error, "nats publish: line \(number) is \(length) bytes, longer than 1048576; not published")
            }
        }
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let outcome = chunk.withUnsafeMutableBytes { Syscall.read(input, into: $0) }
            guard case .success(let count) = outcome else {
                if case .failure(let error) = outcome, error != .interrupted {
                    logger.log(.error, "nats publish: reading the input failed: \(error)")
                    readFailed = true
                    break
                }
                continue
            }
            if count == 0 {
                splitter.finish(publish)
                break
            }
            splitter.feed(Array(chunk[..<count]), publish)
        }
        let (stored, duplicates, refused) = tally.wait()
        logger.log(.info, "nats publish: \(stored) jobs stored in \(layout.jobStream) (\(config.partitions) partitions; \(duplicates) were there already, "
                   + "\(publisher.retries) sent again)")
        if refused > 0 { return 70 }
        if readFailed { return 66 }
        return invalid > 0 ? 65 : 0
    }

    /// Jobs sent and their acknowledgements, waited for at the end.
    private final class Tally: Sendable {
        private struct Counts {
            var sent = 0, stored = 0, duplicates = 0, refused = 0
            var done: Int { stored + refused }
        }
        private let counts = Mutex(Counts())
        private let allDone = DispatchSemaphore(value: 0)
        private let isDone = Atomic<Bool>(false)
        private let inputEnded = Atomic<Bool>(false)

        private func done() {
            if !isDone.exchange(true, ordering: .relaxed) { allDone.signal() }
        }

        func sent() { counts.withLock { $0.sent += 1 } }

        func finished(_ outcome: Result<JetStream.PubAck, NATSError>, line: Int, logger: BatchmanLogger) {
            if case .failure(let error) = outcome { logger.log(.error, "nats publish: line \(line) was not stored: \(error)") }
            let complete = counts.withLock { counts -> Bool in
                switch outcome {
                case .success(let ack):
                    counts.stored += 1
                    if ack.duplicate ?? false { counts.duplicates += 1 }
                case .failure:
                    counts.refused += 1
                }
                return counts.done == counts.sent
            }
            if complete, inputEnded.load(ordering: .acquiring) { done() }
        }

        func wait() -> (stored: Int, duplicates: Int, refused: Int) {
            inputEnded.store(true, ordering: .releasing)
            if counts.withLock({ $0.done == $0.sent }) { done() }
            allDone.wait()
            return counts.withLock { ($0.stored, $0.duplicates, $0.refused) }
        }
    }
}
