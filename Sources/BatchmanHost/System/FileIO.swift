import FoundationEssentials
import Glibc

/// Whole-file reads and writes, on top of ``Syscall``: files replaced atomically.
enum FileIO {
    /// The whole file, or why it cannot be read. `noFollow`: a symbolic link is refused (ELOOP).
    static func readAll(_ path: String, noFollow: Bool = false) -> Result<[UInt8], Errno> {
        Syscall.open(path, O_RDONLY | (noFollow ? O_NOFOLLOW : 0)).flatMap { descriptor in
            defer { close(descriptor) }
            return readAll(descriptor: descriptor)
        }
    }

    /// The whole file, or nil if it cannot be read (or does not exist).
    static func read(_ path: String, noFollow: Bool = false) -> [UInt8]? {
        try? readAll(path, noFollow: noFollow).get()
    }

    /// Everything left to read from `descriptor`, up to `limit` bytes (more: `EFBIG`).
    static func readAll(descriptor: Int32, limit: Int = .max) -> Result<[UInt8], Errno> {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            switch buffer.withUnsafeMutableBytes({ Syscall.read(descriptor, into: $0) }) {
            case .failure(let error): return .failure(error)
            case .success(0): return .success(bytes)
            case .success(let count):
                bytes += buffer[..<count]
                if bytes.count > limit { return .failure(Errno(rawValue: EFBIG)) }
            }
        }
    }

    /// Replaces `path` with `bytes` whole: a temporary file (created `mode`, never through a
    /// symbolic link), fsync (with `sync`), rename, and an fsync of the folder, so a crash
    /// leaves the old file or the new one, never a mix.
    @discardableResult
    static func replace(_ path: String, with bytes: [UInt8], sync: Bool, mode: mode_t = 0o600) -> Result<Void, Errno> {
        let temporary = "\(path).tmp"
        let written = Syscall.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: mode).flatMap { descriptor in
            defer { close(descriptor) }
            return Syscall.writeAll(descriptor, bytes).flatMap { () -> Result<Void, Errno> in
                guard sync else { return .success(()) }
                return Syscall.valueOrErrno { fsync(descriptor) }.map { _ in () }
            }
        }
        let renamed = written.flatMap { Syscall.valueOrErrno { rename(temporary, path) }.map { _ in () } }
        guard case .success = renamed else {
            unlink(temporary)
            return renamed
        }
        if sync { syncFolder(URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        return .success(())
    }

    /// Writes `bytes` whole to `descriptor`; false on an error.
    @discardableResult
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        (try? Syscall.writeAll(descriptor, bytes).get()) != nil
    }

    /// Makes renames and deletions in `directory` durable.
    static func syncFolder(_ directory: String) {
        guard case .success(let descriptor) = Syscall.open(directory, O_RDONLY | O_DIRECTORY) else { return }
        fsync(descriptor)
        close(descriptor)
    }
}
