import CBatchmanSystem
import Glibc

/// One side's mapping of a memfd shared with a worker (``OutcomeLog``, ``JobLog``): the side
/// that writes grows the file and maps it read-write; the side that reads maps what it is told
/// was written, read-only. Both keep their mapping and remap only to grow it. It owns the
/// descriptor: closed with it.
final class SharedMapping {
    let fileDescriptor: Int32
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var length = 0

    init(fileDescriptor: Int32) {
        self.fileDescriptor = fileDescriptor
    }

    deinit {
        unmap()
        close(fileDescriptor)
    }

    /// A new memfd of `size` bytes, sealed against shrinking (the other side cannot make this
    /// side's mapping fault); nil if it cannot be made.
    static func make(_ name: String, size: Int) -> SharedMapping? {
        let descriptor = bm_memfd_growing_only(name, Int64(size))
        return descriptor >= 0 ? SharedMapping(fileDescriptor: descriptor) : nil
    }

    private func unmap() {
        if let base { munmap(base, length) }
        base = nil
        length = 0
    }

    /// The writer's side: makes the file and the mapping at least `needed` bytes long,
    /// doubling from 1 MiB; false if the memory cannot grow.
    func reserve(_ needed: Int) -> Bool {
        guard needed > length || base == nil else { return true }
        var capacity = max(length * 2, 1 << 20)
        while capacity < needed { capacity *= 2 }
        guard ftruncate(fileDescriptor, off_t(capacity)) == 0 else { return false }
        unmap()
        guard let mapped = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fileDescriptor, 0), mapped != MAP_FAILED else { return false }
        base = mapped
        length = capacity
        return true
    }

    /// The reader's side: the file's first `bytes`, mapped read-only (at least 1 MiB of it when
    /// the file is that long, so small batches do not remap). Safe while the file is at least
    /// that long, which a seal against shrinking guarantees once seen.
    func read(_ bytes: Int) -> UnsafeRawPointer? {
        if bytes <= length, let base { return UnsafeRawPointer(base) }
        unmap()
        var status = stat()
        guard fstat(fileDescriptor, &status) == 0 else { return nil }
        let size = min(max(bytes, 1 << 20), Int(status.st_size))
        guard size >= bytes, size > 0, let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fileDescriptor, 0), mapped != MAP_FAILED else { return nil }
        base = mapped
        length = size
        return UnsafeRawPointer(mapped)
    }
}
