import Batchman
import CBatchmanPlugin
import CBatchmanSystem
import Glibc

/// A batch's jobs on their way to an isolated key's worker, in memory shared with it (a memfd
/// the host makes and the worker inherits as descriptor 5): the host writes each job's id and
/// payload once, straight from the batch, and the `batch` frame says only how many jobs there
/// are and how many bytes they take. The worker hands the plugin pointers into its mapping, so
/// between the host's batch and the plugin a payload is copied once, and never through the socket.
///
/// Layout, from offset 0, per job: `UInt32` attempt, `UInt32` flags (`bm_job.flags`), `UInt32` id
/// length, `UInt32` payload length, the id's bytes, the payload's bytes.
///
/// The host only writes here and never reads back, so nothing the plugin's process writes can
/// mislead it; the memfd is sealed against shrinking, so a worker that truncates it cannot make
/// the host's stores fault.
enum JobLog {
    static let workerDescriptor: Int32 = 5
    static let jobHeaderSize = WorkerFrame.jobHeaderSize

    /// The host's side: writes a batch's jobs before the frame that announces them.
    final class Writer {
        private let mapping: SharedMapping
        var fileDescriptor: Int32 { mapping.fileDescriptor }

        private init(mapping: SharedMapping) {
            self.mapping = mapping
        }

        /// A new, empty log; nil if the memfd cannot be made.
        static func make() -> Writer? {
            SharedMapping.make("batchman-jobs", size: 0).map(Writer.init(mapping:))
        }

        /// Writes the jobs of `batch` at `part`, in that order.
        /// - Returns: the bytes they take, or nil if the memory cannot grow to hold them.
        func write(_ part: [Int], of batch: Batch<JobBytes>) -> Int? {
            // Fields are read through the array, never by binding whole jobs (see PluginInstance.call).
            let jobs = batch.jobs
            var length = 0
            for index in part { length += JobLog.jobHeaderSize + jobs[index].id.utf8.count + jobs[index].payload.count }
            guard length > 0 else { return 0 }
            guard mapping.reserve(length), let base = mapping.base else { return nil }
            var offset = 0
            for index in part {
                let record = base + offset
                var id = jobs[index].id
                let idCount = id.withUTF8 { bytes in
                    if let source = bytes.baseAddress { (record + JobLog.jobHeaderSize).copyMemory(from: source, byteCount: bytes.count) }
                    return bytes.count
                }
                let payloadCount = jobs[index].payload.withUnsafeBytes { bytes in
                    if let source = bytes.baseAddress { (record + JobLog.jobHeaderSize + idCount).copyMemory(from: source, byteCount: bytes.count) }
                    return bytes.count
                }
                record.storeBytes(of: UInt32(clamping: jobs[index].attempt).littleEndian, as: UInt32.self)
                record.storeBytes(of: (jobs[index].isRedelivery ? BM_JOB_REDELIVERED : 0).littleEndian, toByteOffset: 4, as: UInt32.self)
                record.storeBytes(of: UInt32(idCount).littleEndian, toByteOffset: 8, as: UInt32.self)
                record.storeBytes(of: UInt32(payloadCount).littleEndian, toByteOffset: 12, as: UInt32.self)
                offset += JobLog.jobHeaderSize + idCount + payloadCount
            }
            return offset
        }
    }

    /// The worker's side: maps what the host wrote and lays it out as the plugin's `bm_job`s.
    final class Reader {
        private let mapping: SharedMapping
        private var jobs: [bm_job] = []

        init(fileDescriptor: Int32) {
            mapping = SharedMapping(fileDescriptor: fileDescriptor)
        }

        /// Calls `body` with the `count` jobs the host wrote in `length` bytes, pointing into
        /// the mapping; nil if they are not what the layout says, which only a broken host causes.
        func withJobs<Result>(count: Int, length: Int, _ body: (UnsafeBufferPointer<bm_job>) -> Result) -> Result? {
            guard count > 0 else { return length == 0 ? body(UnsafeBufferPointer(start: nil, count: 0)) : nil }
            guard count <= length / JobLog.jobHeaderSize, let base = mapping.read(length) else { return nil }
            jobs.removeAll(keepingCapacity: true)
            jobs.reserveCapacity(count)
            var offset = 0
            for _ in 0..<count {
                guard length - offset >= JobLog.jobHeaderSize else { return nil }
                let record = base + offset
                let idCount = Int(UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
                let payloadCount = Int(UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
                guard length - offset - JobLog.jobHeaderSize >= idCount + payloadCount else { return nil }
                let id = (record + JobLog.jobHeaderSize).assumingMemoryBound(to: CChar.self)
                jobs.append(bm_job(id: bm_str(ptr: id, len: idCount), payload: bm_str(ptr: id + idCount, len: payloadCount),
                                   attempt: UInt32(littleEndian: record.loadUnaligned(as: UInt32.self)),
                                   flags: UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 4, as: UInt32.self))))
                offset += JobLog.jobHeaderSize + idCount + payloadCount
            }
            guard offset == length else { return nil }
            return jobs.withUnsafeBufferPointer(body)
        }
    }
}
