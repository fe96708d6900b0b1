import CBatchmanPlugin
import CBatchmanSystem
import Glibc
import Synchronization

/// The outcomes of a worker's current batch, in memory shared with the host (a memfd the host
/// makes and the worker inherits as descriptor 4).
///
/// The worker appends a record per outcome, as the plugin emits it, and then publishes the new
/// length in the first 8 bytes: no system call per outcome, and what was published survives the
/// worker's crash, since the memory is the host's too. The host reads the records once the
/// batch is done or the worker is dead, before it sends the next batch.
///
/// Layout: `UInt64` published length, then records of `UInt32` index, `Int32` status, `UInt32`
/// length, `UInt32` retry-after (milliseconds), `UInt32` reason length, the reason's bytes and
/// the outcome's bytes (the reason and retry-after are `emit_detailed`'s, ABI 1.1).
///
/// Everything in it is written by the plugin's process, so the host believes none of it: the
/// memfd is sealed against shrinking (a mapping of it never faults), the published length is
/// checked against the batch's bound and the file's size, and the records are checked one by
/// one (``OutcomeLogParser``), so the host's work and memory are bounded by the batch, whatever
/// length the worker publishes.
enum OutcomeLog {
    static let workerDescriptor: Int32 = 4
    static let headerSize = 8
    static let recordHeaderSize = OutcomeLogParser.recordHeaderSize

    /// The host's side: reads what the worker published.
    final class Reader {
        private let mapping: SharedMapping
        var fileDescriptor: Int32 { mapping.fileDescriptor }

        private init(mapping: SharedMapping) {
            self.mapping = mapping
        }

        /// A new, empty log; nil if the memfd cannot be made.
        static func make() -> Reader? {
            SharedMapping.make("batchman-outcomes", size: headerSize).map(Reader.init(mapping:))
        }

        /// Empties the log before a batch: what the worker publishes next is that batch's.
        func reset() {
            var zero = UInt64(0)
            _ = withUnsafeBytes(of: &zero) { Syscall.writeAll(fileDescriptor, $0, at: 0) }
        }

        /// The records published for a batch of `count` jobs whose outcomes may take
        /// `maxResultBytes`. Read once the worker has stopped writing (the batch is done, or the
        /// worker is dead); a process it left behind may still write, which changes bytes the
        /// host copies but never what it checked.
        func read(count: Int, maxResultBytes: Int) -> OutcomeLogParser.Contents {
            var header = UInt64(0)
            guard case .success(headerSize) = withUnsafeMutableBytes(of: &header, { Syscall.read(fileDescriptor, into: $0, at: 0) }) else {
                return .broken("its outcome log cannot be read")
            }
            let published = UInt64(littleEndian: header)
            guard published > 0 else { return .records([], bytes: []) }
            let budget = maxResultBytes + count * (recordHeaderSize + OutcomeLogParser.maxReasonBytes + OutcomeLogParser.messageAllowance)
            guard published <= UInt64(budget) else {
                return .broken("it published \(published) bytes of outcomes for \(count) jobs, more than the batch may hold (maxResultBytes \(maxResultBytes))")
            }
            var status = stat()
            guard fstat(fileDescriptor, &status) == 0, UInt64(status.st_size) >= UInt64(headerSize) + published else {
                return .broken("it published \(published) bytes of outcomes, more than its outcome log holds")
            }
            let length = Int(published)
            guard let records = mapping.read(headerSize + length) else { return .broken("its outcome log cannot be mapped") }
            return OutcomeLogParser.parse(records + headerSize, length: length, count: count, maxResultBytes: maxResultBytes)
        }
    }

    /// The worker's side: appends records to the shared memory and publishes them.
    final class Writer {
        private let mapping: SharedMapping
        private var length = 0

        init(fileDescriptor: Int32) {
            mapping = SharedMapping(fileDescriptor: fileDescriptor)
        }

        /// Starts a batch: nothing published.
        func reset() {
            length = 0
            publish()
        }

        /// Appends one outcome and publishes it; false if the memory cannot grow.
        @discardableResult
        func append(index: Int, status: Int32, data: UnsafeRawBufferPointer, detail: OutcomeDetail? = nil) -> Bool {
            let reason = Array((detail?.reason ?? "").utf8)
            let needed = headerSize + length + recordHeaderSize + reason.count + data.count
            guard mapping.reserve(needed), let base = mapping.base else { return false }
            let record = base + headerSize + length
            record.storeBytes(of: UInt32(index).littleEndian, as: UInt32.self)
            record.storeBytes(of: UInt32(bitPattern: status).littleEndian, toByteOffset: 4, as: UInt32.self)
            record.storeBytes(of: UInt32(data.count).littleEndian, toByteOffset: 8, as: UInt32.self)
            record.storeBytes(of: UInt32(clamping: detail?.retryAfterMilliseconds ?? 0).littleEndian, toByteOffset: 12, as: UInt32.self)
            record.storeBytes(of: UInt32(reason.count).littleEndian, toByteOffset: 16, as: UInt32.self)
            reason.withUnsafeBytes { if let source = $0.baseAddress { (record + recordHeaderSize).copyMemory(from: source, byteCount: $0.count) } }
            if let source = data.baseAddress, data.count > 0 {
                (record + recordHeaderSize + reason.count).copyMemory(from: source, byteCount: data.count)
            }
            length += recordHeaderSize + reason.count + data.count
            publish()
            return true
        }

        private func publish() {
            guard let base = mapping.base else { return }
            // The host reads the length only after the batch ended or the worker died; the fence
            // keeps the record's bytes before the length that covers them all the same.
            atomicMemoryFence(ordering: .releasing)
            base.storeBytes(of: UInt64(length).littleEndian, as: UInt64.self)
        }
    }
}
