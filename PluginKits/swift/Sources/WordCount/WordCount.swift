// wordcount: a Batchman plugin in Swift, the Swift kit's starting point.
//
// Answers each job with {"words":N,"total":T}: N counts the words of the job's payload (runs of
// ASCII letters and digits at least `minLength` long, from the key's config, default 1), T the
// words this key's instance has counted so far. A job of more than `maxWords` words (if set)
// fails with the reason "too_many_words". Build and check (see README.md):
//
//   swift build -c release
//   batchman plugin-test .build/release/libWordCount.so --config '{"minLength": 2}'
import CBatchmanPluginABI
import Foundation
import Synchronization

/// One instance per key: retained in `create`, released in `destroy`. BM_FLAG_CONCURRENT is
/// set, so several host threads may count at once: the total is atomic and nothing else
/// changes after `create`.
final class WordCount {
    let host: UnsafePointer<bm_host>
    let minLength: Int
    /// nil: no limit.
    let maxWords: UInt64?
    let total = Atomic<UInt64>(0)
    /// The host's ABI is 1.1 or later: `emit_detailed` and `deadline_ns` are there.
    let isDetailed: Bool

    init(host: UnsafePointer<bm_host>, config: Config) {
        self.host = host
        self.minLength = config.minLength ?? 1
        self.maxWords = config.maxWords.map(UInt64.init)
        self.isDetailed = host.pointee.abi_minor >= 1
    }

    func count(_ text: UnsafeRawBufferPointer) -> UInt64 {
        var words: UInt64 = 0
        var run = 0
        for byte in text {
            if (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) {
                run += 1
                continue
            }
            if run > 0, run >= minLength { words += 1 }
            run = 0
        }
        if run > 0, run >= minLength { words += 1 }
        total.add(words, ordering: .relaxed)
        return words
    }

    func log(_ level: Int32, _ message: String) {
        var message = message
        message.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { host.pointee.log(host.pointee.ctx, level, $0.baseAddress, $0.count) }
        }
    }
}

/// The bytes of a bm_str, borrowed for the duration of the call that received them.
func bytes(_ string: bm_str) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: string.ptr, count: string.ptr == nil ? 0 : string.len)
}

func writeError(_ message: String, to buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
    guard let buffer, capacity > 0 else { return }
    let utf8 = Array(message.utf8.prefix(capacity - 1))
    utf8.withUnsafeBytes { UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress!, byteCount: utf8.count) }
    buffer[utf8.count] = 0
}

/// The key's config, a JSON object such as {"minLength": 2, "maxWords": 1000}, decoded by
/// Foundation's JSONDecoder.
struct Config: Decodable {
    var minLength: Int?
    var maxWords: Int?

    static func read(_ bytes: UnsafeRawBufferPointer) throws(ConfigError) -> Config {
        let config: Config
        do {
            config = try JSONDecoder().decode(Config.self, from: Data(bytes))
        } catch DecodingError.typeMismatch(_, let context) {
            throw ConfigError("config: \"\(context.codingPath.first?.stringValue ?? "?")\" must be a whole number")
        } catch {
            throw ConfigError("config: expected a JSON object such as {\"minLength\": 2}")
        }
        if let minLength = config.minLength, !(1...100).contains(minLength) {
            throw ConfigError("config: \"minLength\" must be a whole number from 1 to 100")
        }
        if let maxWords = config.maxWords, maxWords < 1 { throw ConfigError("config: \"maxWords\" must be a whole number of at least 1") }
        return config
    }
}

/// `emit_detailed` (ABI 1.1): a failure naming its reason (errorReason "plugin:<reason>") and,
/// for BM_RETRY, the least time before it is tried again.
func emit(_ out: bm_emitter, _ index: Int, _ status: Int32, _ message: String, reason: StaticString, retryAfterMilliseconds: UInt64 = 0) {
    var message = message
    let token = bm_str(ptr: cString(reason), len: reason.utf8CodeUnitCount)
    message.withUTF8 { utf8 in
        utf8.withMemoryRebound(to: CChar.self) { _ = out.emit_detailed(out.ctx, index, status, $0.baseAddress, $0.count, token, retryAfterMilliseconds) }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `deadline_ns`.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

struct ConfigError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// A C string with static lifetime: a string literal's bytes are NUL-terminated and never move.
func cString(_ literal: StaticString) -> UnsafePointer<CChar> {
    UnsafeRawPointer(literal.utf8Start).assumingMemoryBound(to: CChar.self)
}

// Swift errors never cross into the host: `create` refuses with a message, `process_batch`
// cannot throw. (A Swift runtime trap, like any crash, ends the process: use
// "isolation": "process" for plugins you do not trust.)
private let create: @convention(c) (
    UnsafePointer<bm_host>?, bm_str, bm_str, UnsafeMutablePointer<CChar>?, Int
) -> UnsafeMutableRawPointer? = { host, key, config, errorBuffer, errorCapacity in
    let settings: Config
    do throws(ConfigError) {
        settings = try Config.read(bytes(config))
    } catch {
        writeError(error.message, to: errorBuffer, capacity: errorCapacity)
        return nil  // refuses the key: the host says why and does not start
    }
    let counter = WordCount(host: host!, config: settings)
    counter.log(BM_LOG_INFO, "wordcount ready for key \"\(String(decoding: bytes(key), as: UTF8.self))\" (minLength \(counter.minLength))")
    return Unmanaged.passRetained(counter).toOpaque()
}

private let processBatch: @convention(c) (
    UnsafeMutableRawPointer?, UnsafePointer<bm_batch>?, UnsafePointer<bm_emitter>?, UnsafeMutablePointer<CChar>?, Int
) -> Int32 = { instance, batch, out, _, _ in
    let counter = Unmanaged<WordCount>.fromOpaque(instance!).takeUnretainedValue()
    let batch = batch!.pointee
    let out = out!.pointee
    for index in 0..<batch.count {
        // The host stopped waiting for this call (its timeout): it has answered these jobs and
        // retries them, so do no more work; ask for the retry not before 100 ms.
        if counter.isDetailed, batch.deadline_ns != 0, monotonicNanoseconds() > batch.deadline_ns {
            emit(out, index, BM_RETRY, "past the call's deadline", reason: "deadline", retryAfterMilliseconds: 100)
            continue
        }
        let words = counter.count(bytes(batch.jobs[index].payload))
        if counter.isDetailed, let maxWords = counter.maxWords, words > maxWords {
            emit(out, index, BM_FAILED, "\(words) words, more than maxWords \(maxWords)", reason: "too_many_words")
            continue
        }
        var result = "{\"words\":\(words),\"total\":\(counter.total.load(ordering: .relaxed))}"
        // The host copies the bytes before emit returns.
        result.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { _ = out.emit(out.ctx, index, BM_OK, $0.baseAddress, $0.count) }
        }
    }
    return 0
}

private let destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void = { instance in
    Unmanaged<WordCount>.fromOpaque(instance!).release()
}

/// The descriptor: static, for the life of the process.
nonisolated(unsafe) let descriptor: UnsafeMutablePointer<bm_plugin> = {
    let descriptor = UnsafeMutablePointer<bm_plugin>.allocate(capacity: 1)
    descriptor.initialize(to: bm_plugin(
        magic: BM_PLUGIN_MAGIC, struct_size: UInt32(MemoryLayout<bm_plugin>.size),
        abi_major: UInt16(BM_ABI_MAJOR), abi_minor: UInt16(BM_ABI_MINOR), flags: BM_FLAG_CONCURRENT,
        name: cString("wordcount"), version: cString("1.0.0"),
        create: create, process_batch: processBatch, destroy: destroy))
    return descriptor
}()

@_cdecl("batchman_plugin_v1")
public func batchmanPluginV1() -> UnsafePointer<bm_plugin> { UnsafePointer(descriptor) }
