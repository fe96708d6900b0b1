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
/// length and the bytes.
enum OutcomeLog {
    static let workerDescriptor: Int32 = 4
    static let headerSize = 8

    /// The host's side: reads what the worker published.
    struct Reader {
        let fileDescriptor: Int32

        /// A new, empty log; nil if memfd_create fails.
        static func make() -> Reader? {
            let descriptor = bm_memfd("batchman-outcomes")
            guard descriptor >= 0 else { return nil }
            guard ftruncate(descriptor, off_t(headerSize)) == 0 else {
                close(descriptor)
                return nil
            }
            return Reader(fileDescriptor: descriptor)
        }

        /// Empties the log before a batch: what the worker publishes next is that batch's.
        func reset() {
            var zero = [UInt8](repeating: 0, count: headerSize)
            _ = pwrite(fileDescriptor, &zero, headerSize, 0)
        }

        /// Every record the worker published for the current batch.
        func records() -> [(index: Int, status: Int32, data: [UInt8])] {
            var header = [UInt8](repeating: 0, count: headerSize)
            guard pread(fileDescriptor, &header, headerSize, 0) == headerSize else { return [] }
            let length = Int(header.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            guard length > 0, length < 1 << 34 else { return [] }
            var bytes = [UInt8](repeating: 0, count: length)
            guard pread(fileDescriptor, &bytes, length, off_t(headerSize)) == length else { return [] }
            var records: [(index: Int, status: Int32, data: [UInt8])] = []
            var offset = 0
            func field(_ at: Int) -> UInt32 { bytes[at..<at + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            while offset + 12 <= bytes.count {
                let count = Int(field(offset + 8))
                guard offset + 12 + count <= bytes.count else { break }
                records.append((Int(field(offset)), Int32(bitPattern: field(offset + 4)), Array(bytes[(offset + 12)..<(offset + 12 + count)])))
                offset += 12 + count
            }
            return records
        }
    }

    /// The worker's side: appends records to the shared memory and publishes them.
    final class Writer {
        private let fileDescriptor: Int32
        private var base: UnsafeMutableRawPointer?
        private var capacity = 0
        private var length = 0

        init(fileDescriptor: Int32) {
            self.fileDescriptor = fileDescriptor
        }

        /// Starts a batch: nothing published.
        func reset() {
            length = 0
            publish()
        }

        /// Appends one outcome and publishes it; false if the memory cannot grow.
        @discardableResult
        func append(index: Int, status: Int32, data: UnsafeRawBufferPointer) -> Bool {
            let needed = headerSize + length + 12 + data.count
            guard needed <= capacity || grow(to: needed) else { return false }
            let record = base! + headerSize + length
            record.storeBytes(of: UInt32(index).littleEndian, as: UInt32.self)
            record.storeBytes(of: UInt32(bitPattern: status).littleEndian, toByteOffset: 4, as: UInt32.self)
            record.storeBytes(of: UInt32(data.count).littleEndian, toByteOffset: 8, as: UInt32.self)
            if let source = data.baseAddress, data.count > 0 { (record + 12).copyMemory(from: source, byteCount: data.count) }
            length += 12 + data.count
            publish()
            return true
        }

        private func publish() {
            guard let base else { return }
            // The host reads the length only after the batch ended or the worker died; the fence
            // keeps the record's bytes before the length that covers them all the same.
            atomicMemoryFence(ordering: .releasing)
            base.storeBytes(of: UInt64(length).littleEndian, as: UInt64.self)
        }

        private func grow(to needed: Int) -> Bool {
            var newCapacity = max(capacity * 2, 1 << 20)
            while newCapacity < needed { newCapacity *= 2 }
            guard ftruncate(fileDescriptor, off_t(newCapacity)) == 0 else { return false }
            if let base { munmap(base, capacity) }
            guard let mapped = mmap(nil, newCapacity, PROT_READ | PROT_WRITE, MAP_SHARED, fileDescriptor, 0), mapped != MAP_FAILED else {
                base = nil
                capacity = 0
                return false
            }
            base = mapped
            capacity = newCapacity
            return true
        }
    }
}
