import Glibc

/// A shared library opened with dlopen. It is never closed: Go, Rust and Swift runtimes inside
/// a plugin cannot be unloaded safely, so a loaded library lives as long as the process.
struct DynamicLibrary: @unchecked Sendable {
    // @unchecked: the handle is an opaque token owned by the process for its whole life;
    // dlsym on it is thread-safe.
    private let handle: UnsafeMutableRawPointer

    /// Opens `path` with RTLD_NOW (fail now on missing symbols, not mid-batch) and RTLD_LOCAL
    /// (a plugin's symbols never satisfy another's). Never RTLD_DEEPBIND.
    /// - Returns: the library, or dlerror's text.
    static func open(_ path: String) -> Result<DynamicLibrary, DynamicLibraryError> {
        _ = dlerror()  // clear any stale error so the one we read is ours
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            return .failure(DynamicLibraryError(message: lastError() ?? "dlopen failed"))
        }
        return .success(DynamicLibrary(handle: handle))
    }

    /// The address of the function `name`, or nil if the library does not export it.
    func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        _ = dlerror()
        return dlsym(handle, name)
    }

    private static func lastError() -> String? {
        guard let message = dlerror() else { return nil }
        return String(cString: message)
    }
}

struct DynamicLibraryError: Error {
    let message: String
}
