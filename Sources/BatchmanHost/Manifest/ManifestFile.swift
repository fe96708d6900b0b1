import FoundationEssentials
import Glibc

/// Reads a manifest file's bytes, with a sentence for each way that can fail.
enum ManifestFile {
    /// Manifests are small; a larger file is surely not one.
    static let maxBytes = 16 << 20

    static func read(_ path: String) -> Result<Data, Failure> {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
        let descriptor: Int32
        switch Syscall.open(path, O_RDONLY | O_NONBLOCK) {
        case .success(let opened): descriptor = opened
        case .failure(let error): return .failure(Failure(errno: error.rawValue))
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return .failure(Failure(errno: errno)) }
        if status.st_mode & S_IFMT == S_IFDIR { return .failure(Failure(reason: "is a directory, not a manifest file")) }
        guard status.st_mode & S_IFMT == S_IFREG else { return .failure(Failure(reason: "is not a regular file")) }
        guard status.st_size <= maxBytes else { return .failure(Failure(reason: "is \(status.st_size) bytes, too large for a manifest (at most \(maxBytes))")) }
        switch FileIO.readAll(descriptor: descriptor, limit: maxBytes) {
        case .success(let bytes): return .success(Data(bytes))
        case .failure(let error) where error.rawValue == EFBIG:
            return .failure(Failure(reason: "is too large for a manifest (at most \(maxBytes) bytes)"))
        case .failure(let error): return .failure(Failure(errno: error.rawValue))
        }
    }

    /// Why the file could not be read, as a sentence.
    struct Failure: Error, CustomStringConvertible {
        let reason: String
        let errno: Int32?

        init(reason: String) {
            self.reason = reason
            self.errno = nil
        }

        init(errno code: Int32) {
            self.errno = code
            self.reason = switch code {
            case ENOENT: "no such file"
            case ELOOP: "is a symbolic link loop (or a chain of links too long to follow)"
            case EACCES: "cannot be read: permission denied"
            case ENOTDIR: "no such file (a folder in its path is a file)"
            default: "cannot be read: \(Errno(rawValue: code))"
            }
        }

        var description: String { reason }
    }
}
