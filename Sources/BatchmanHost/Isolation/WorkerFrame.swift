/// The messages between the host and a plugin worker process, over a stream socket: each frame
/// is a little-endian `UInt32` length (of what follows), a kind byte, then the fields. Strings
/// and byte fields are a `UInt32` length and the bytes.
///
/// host -> worker: `start` once, then `batch`es, one at a time.
/// worker -> host: `ready` or `refused` for `start`; `done` for each batch, once every outcome
/// the plugin emitted is in the shared outcome log (``OutcomeLog``), with what `process_batch`
/// returned (for the jobs it did not emit) and the batch's token; `pause` whenever the plugin
/// calls `bm_host.pause` (the host reads it during a call, or when the next call begins).
///
/// What a worker sends is untrusted: the plugin inside it can write anything to the socket.
/// A frame decodes only if it is exactly what its kind says (no byte missing, none left over),
/// and it is no longer than ``maxLength(fromWorker:)``; anything else is a broken worker.
enum WorkerFrame: Equatable, Sendable {
    case start(Start)
    /// `token` is drawn at random per batch and echoed by its `done`: a `done` that a plugin
    /// forges, or one left over from an earlier batch, does not end this one.
    /// `deadline` is the call's `deadline_ns` (`CLOCK_MONOTONIC`, the same clock in both
    /// processes); 0 for none. The `count` jobs themselves are in the shared job log
    /// (``JobLog``), in its first `length` bytes: no payload crosses the socket.
    case batch(id: UInt64, token: UInt64, key: String, deadline: UInt64, count: UInt32, length: UInt64)
    case ready(name: String, version: String)
    /// The plugin could not be loaded or its `create` refused: the reason (``PluginLoadError/Code``'s
    /// name) and what the loader said, without the key and plugin the host already knows.
    case refused(code: String, detail: String)
    case done(token: UInt64, returned: Int32, message: String)
    /// The plugin asked to pause `key`'s new batches (`bm_host.pause`).
    case pause(key: String, milliseconds: UInt64)

    struct Start: Equatable, Sendable {
        var pluginPath: String
        var key: String
        var config: String
        var debug: Bool
        /// Outcome bytes one batch may return (`maxResultBytes`).
        var maxResultBytes: Int
        /// What the plugin sees as `manifest_dir`.
        var manifestDirectory: String = "/"
    }

    private enum Kind: UInt8 {
        case start = 1, batch, ready = 10, refused, done = 13, pause
    }

    /// The bytes a job takes in the job log before its id and payload: attempt, flags and the
    /// two lengths, each a `UInt32` (``JobLog``).
    static let jobHeaderSize = 16

    /// The longest frame a worker may send: `ready`, `refused`, `done` and `pause` carry a
    /// name, a version, a message or a key. Anything longer is not one of them, and is never buffered.
    static let maxLengthFromWorker = 64 * 1024

    /// A frame's bytes, length prefix included.
    var encoded: [UInt8] {
        var body = FrameBody()
        switch self {
        case .start(let start):
            body.byte(Kind.start.rawValue)
            body.byte(start.debug ? 1 : 0)
            body.uint64(UInt64(start.maxResultBytes))
            body.string(start.pluginPath)
            body.string(start.key)
            body.string(start.config)
            body.string(start.manifestDirectory)
        case .batch(let id, let token, let key, let deadline, let count, let length):
            body.byte(Kind.batch.rawValue)
            body.uint64(id)
            body.uint64(token)
            body.uint64(deadline)
            body.string(key)
            body.uint32(count)
            body.uint64(length)
        case .ready(let name, let version):
            body.byte(Kind.ready.rawValue)
            body.string(name)
            body.string(version)
        case .refused(let code, let detail):
            body.byte(Kind.refused.rawValue)
            body.string(code)
            body.string(detail)
        case .done(let token, let returned, let message):
            body.byte(Kind.done.rawValue)
            body.uint64(token)
            body.uint32(UInt32(bitPattern: returned))
            body.string(message)
        case .pause(let key, let milliseconds):
            body.byte(Kind.pause.rawValue)
            body.uint64(milliseconds)
            body.string(key)
        }
        var frame = FrameBody()
        frame.uint32(UInt32(body.bytes.count))
        return frame.bytes + body.bytes
    }

    /// Decodes one frame's body (after its length prefix); nil unless it is one whole frame of
    /// a known kind, every field in bounds and nothing left over.
    static func decode(_ body: ArraySlice<UInt8>) -> WorkerFrame? {
        var reader = FrameReader(body)
        guard let kind = reader.byte().flatMap(Kind.init(rawValue:)) else { return nil }
        let frame: WorkerFrame?
        switch kind {
        case .start:
            guard let debug = reader.byte(), debug <= 1, let limit = reader.uint64(), limit <= UInt64(Int.max), let path = reader.string(),
                  let key = reader.string(), let config = reader.string(), let directory = reader.string() else { return nil }
            frame = .start(Start(pluginPath: path, key: key, config: config, debug: debug == 1, maxResultBytes: Int(limit),
                                 manifestDirectory: directory))
        case .batch:
            guard let id = reader.uint64(), let token = reader.uint64(), let deadline = reader.uint64(), let key = reader.string(),
                  let count = reader.uint32(), let length = reader.uint64() else { return nil }
            // Each job takes at least its header in the job log: a count that cannot fit is not believed.
            guard length <= UInt64(Int.max), UInt64(count) <= length / UInt64(jobHeaderSize) else { return nil }
            frame = .batch(id: id, token: token, key: key, deadline: deadline, count: count, length: length)
        case .ready:
            guard let name = reader.string(), let version = reader.string() else { return nil }
            frame = .ready(name: name, version: version)
        case .refused:
            guard let code = reader.string(), let detail = reader.string() else { return nil }
            frame = .refused(code: code, detail: detail)
        case .done:
            guard let token = reader.uint64(), let returned = reader.uint32(), let message = reader.string() else { return nil }
            frame = .done(token: token, returned: Int32(bitPattern: returned), message: message)
        case .pause:
            guard let milliseconds = reader.uint64(), let key = reader.string() else { return nil }
            frame = .pause(key: key, milliseconds: milliseconds)
        }
        return reader.remaining == 0 ? frame : nil
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

    var remaining: Int { rest.count }

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
