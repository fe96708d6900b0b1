import FoundationEssentials
import Glibc

/// Whole-file reads and writes, wrapped once: EINTR retried, files replaced atomically.
enum FileIO {
    /// The whole file, or nil if it cannot be read (or does not exist).
    static func read(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = Glibc.read(descriptor, &buffer, buffer.count)
            if count < 0 { if errno == EINTR { continue } else { return nil } }
            if count == 0 { return bytes }
            bytes += buffer[..<count]
        }
    }

    /// Replaces `path` with `bytes` whole: a temporary file, fsync (with `sync`), rename, and an
    /// fsync of the folder, so a crash leaves the old file or the new one, never a mix.
    @discardableResult
    static func replace(_ path: String, with bytes: [UInt8], sync: Bool) -> Bool {
        let temporary = "\(path).tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return false }
        let written = writeAll(descriptor, bytes)
        if sync { fsync(descriptor) }
        close(descriptor)
        guard written, rename(temporary, path) == 0 else {
            unlink(temporary)
            return false
        }
        if sync { syncFolder(URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        return true
    }

    /// Writes `bytes` whole to `descriptor`; false on an error.
    @discardableResult
    static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 { if errno == EINTR { continue } else { return false } }
                offset += written
            }
            return true
        }
    }

    /// Makes renames and deletions in `directory` durable.
    static func syncFolder(_ directory: String) {
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }
}
