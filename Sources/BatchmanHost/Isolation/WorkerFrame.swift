/// The messages between the host and a plugin worker process, over a stream socket: each frame
/// is a little-endian `UInt32` length (of what follows), a kind byte, then the fields. Strings
/// and byte fields are a `UInt32` length and the bytes.
///
/// host -> worker: `start` once, then `batch`es, one at a time.
/// worker -> host: `ready` or `refused` for `start`; for each batch an `outcome` per job, as
/// the plugin emits them (so the outcomes emitted before a crash survive it), then `done`.
enum WorkerFrame: Equatable {
    case start(pluginPath: String, key: String, config: String, debug: Bool)
    case batch(id: UInt64, key: String, jobs: [Job])
    case ready(name: String, version: String)
    case refused(message: String)
    case outcome(index: UInt32, status: Int32, data: [UInt8])
    case done

    struct Job: Equatable {
        var id: [UInt8]
        var payload: [UInt8]
        var attempt: UInt32
    }

    private enum Kind: UInt8 {
        case start = 1, batch, ready = 10, refused, outcome, done
    }

    /// A frame's bytes, length prefix included.
    var encoded: [UInt8] {
        var body = FrameBody()
        switch self {
        case .start(let pluginPath, let key, let config, let debug):
            body.byte(Kind.start.rawValue)
            body.byte(debug ? 1 : 0)
            body.string(pluginPath)
            body.string(key)
            body.string(config)
        case .batch(let id, let key, let jobs):
            body.byte(Kind.batch.rawValue)
            body.uint64(id)
            body.string(key)
            body.uint32(UInt32(jobs.count))
            for job in jobs {
                body.uint32(job.attempt)
                body.bytes(job.id)
                body.bytes(job.payload)
            }
        case .ready(let name, let version):
            body.byte(Kind.ready.rawValue)
            body.string(name)
            body.string(version)
        case .refused(let message):
            body.byte(Kind.refused.rawValue)
            body.string(message)
        case .outcome(let index, let status, let data):
            body.byte(Kind.outcome.rawValue)
            body.uint32(index)
            body.uint32(UInt32(bitPattern: status))
            body.bytes(data)
        case .done:
            body.byte(Kind.done.rawValue)
        }
        var frame = FrameBody()
        frame.uint32(UInt32(body.bytes.count))
        return frame.bytes + body.bytes
    }

    /// Decodes one frame's body (after its length prefix); nil if it is malformed.
    static func decode(_ body: ArraySlice<UInt8>) -> WorkerFrame? {
        var reader = FrameReader(body)
        guard let kind = reader.byte().flatMap(Kind.init(rawValue:)) else { return nil }
        switch kind {
        case .start:
            guard let debug = reader.byte(), let path = reader.string(), let key = reader.string(), let config = reader.string() else { return nil }
            return .start(pluginPath: path, key: key, config: config, debug: debug != 0)
        case .batch:
            guard let id = reader.uint64(), let key = reader.string(), let count = reader.uint32() else { return nil }
            var jobs: [Job] = []
            jobs.reserveCapacity(Int(min(count, 1 << 20)))
            for _ in 0..<count {
                guard let attempt = reader.uint32(), let jobId = reader.bytes(), let payload = reader.bytes() else { return nil }
                jobs.append(Job(id: jobId, payload: payload, attempt: attempt))
            }
            return .batch(id: id, key: key, jobs: jobs)
        case .ready:
            guard let name = reader.string(), let version = reader.string() else { return nil }
            return .ready(name: name, version: version)
        case .refused:
            return reader.string().map { .refused(message: $0) }
        case .outcome:
            guard let index = reader.uint32(), let status = reader.uint32(), let data = reader.bytes() else { return nil }
            return .outcome(index: index, status: Int32(bitPattern: status), data: data)
        case .done:
            return .done
        }
    }
}

/// Appends little-endian fields.
private struct FrameBody {
    var bytes: [UInt8] = []

    mutating func byte(_ value: UInt8) { bytes.append(value) }
    mutating func uint32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func uint64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func bytes(_ value: [UInt8]) {
        uint32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }
    mutating func string(_ value: String) { bytes(Array(value.utf8)) }
}

/// Reads little-endian fields; nil past the end.
private struct FrameReader {
    private var rest: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

    mutating func byte() -> UInt8? { rest.popFirst() }

    mutating func uint32() -> UInt32? {
        guard rest.count >= 4 else { return nil }
        defer { rest = rest.dropFirst(4) }
        return rest.prefix(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func uint64() -> UInt64? {
        guard let low = uint32(), let high = uint32() else { return nil }
        return UInt64(high) << 32 | UInt64(low)
    }

    mutating func bytes() -> [UInt8]? {
        guard let count = uint32(), rest.count >= Int(count) else { return nil }
        defer { rest = rest.dropFirst(Int(count)) }
        return Array(rest.prefix(Int(count)))
    }

    mutating func string() -> String? { bytes().map { String(decoding: $0, as: UTF8.self) } }
}
