import Glibc
import Synchronization

/// Which plugin files this process has loaded, and as what.
///
/// Every plugin is loaded from a private copy under a unique name, removed once loaded: `dlopen`
/// of a path that is already loaded returns the image it loaded first, so a rebuilt plugin would
/// never run; and a library overwritten in place (`cp new.so lib.so`) under a process that maps
/// it crashes that process. A file whose identity (device, inode, size, modification time) is
/// unchanged is not loaded again. Images are never unloaded.
enum LibraryImages {
    /// What identifies one build of a file.
    struct FileIdentity: Hashable, Sendable {
        let device: UInt64
        let inode: UInt64
        let size: Int64
        let modified: Int64
        let modifiedNanoseconds: Int64

        init?(path: String) {
            var status = stat()
            guard stat(path, &status) == 0 else { return nil }
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
            size = Int64(status.st_size)
            modified = Int64(status.st_mtim.tv_sec)
            modifiedNanoseconds = Int64(status.st_mtim.tv_nsec)
        }
    }

    private struct Loaded {
        var identity: FileIdentity
        var plugin: LoadedPlugin
    }

    private static let images = Mutex<[String: Loaded]>([:])
    private static let copies = Atomic<Int>(0)

    /// The plugin loaded from `path` if that build of it is loaded already.
    static func loaded(_ path: String, identity: FileIdentity) -> LoadedPlugin? {
        images.withLock { images in
            guard let loaded = images[path], loaded.identity == identity else { return nil }
            return loaded.plugin
        }
    }

    static func remember(_ plugin: LoadedPlugin, path: String, identity: FileIdentity) {
        images.withLock { $0[path] = Loaded(identity: identity, plugin: plugin) }
    }

    /// Copies `path` to a new, unique file for `dlopen`; the caller removes it once loaded (the
    /// mapping stays valid).
    static func privateCopy(of path: String) -> Result<String, LibraryCopyError> {
        let number = copies.add(1, ordering: .relaxed).newValue
        let name = path.split(separator: "/").last.map(String.init) ?? "plugin.so"
        let folder = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        let copy = "\(folder)/batchman-\(getpid())-\(number)-\(name)"
        let bytes: [UInt8]
        switch FileIO.readAll(path) {
        case .success(let read): bytes = read
        case .failure(let error): return .failure(LibraryCopyError(reason: "cannot read it: \(error)"))
        }
        let written = Syscall.open(copy, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o700).flatMap { target in
            defer { close(target) }
            return Syscall.writeAll(target, bytes)
        }
        if case .failure(let error) = written {
            unlink(copy)
            return .failure(LibraryCopyError(reason: "cannot write \(copy): \(error)"))
        }
        return .success(copy)
    }
}

struct LibraryCopyError: Error {
    let reason: String
}
