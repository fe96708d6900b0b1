import CBatchmanPlugin
import FoundationEssentials
import Glibc

/// Finds plugin files and loads each once, checking its descriptor against the ABI this host
/// speaks.
public final class PluginLoader {
    private let manifestDirectory: String
    private let executableDirectory: String?
    private var loaded: [String: LoadedPlugin] = [:]

    /// - Parameters:
    ///   - manifestDirectory: relative plugin paths and bare names are looked up here first.
    ///   - executableDirectory: bare names are looked up here next (where `swift build` puts
    ///     both `batchman` and the package's plugins).
    public init(manifestDirectory: String, executableDirectory: String? = PluginLoader.currentExecutableDirectory()) {
        self.manifestDirectory = manifestDirectory
        self.executableDirectory = executableDirectory
    }

    /// The folder of the running executable.
    public static func currentExecutableDirectory() -> String? {
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }

    /// The files `plugin` may be, in the order they are tried.
    ///
    /// A bare name (no `/`, no `.so`) such as `EchoPlugin` means `libEchoPlugin.so` beside the
    /// manifest, then beside the executable (where `swift build` puts both), then in
    /// `../lib/batchman` beside it (where an installed `batchman` finds its plugins:
    /// `PREFIX/bin/batchman`, `PREFIX/lib/batchman/`). Anything else is a path, relative to the
    /// manifest.
    public func candidates(for plugin: String) -> [String] {
        if plugin.contains("/") || plugin.hasSuffix(".so") {
            return [plugin.hasPrefix("/") ? plugin : "\(manifestDirectory)/\(plugin)"]
        }
        let file = "lib\(plugin).so"
        let installed = executableDirectory.map { "\($0)/../lib/batchman" }
        return [manifestDirectory, executableDirectory, installed].compactMap { $0 }.map { "\($0)/\(file)" }
    }

    /// The file `plugin` (named by `key`'s entry) is, symbolic links resolved, without loading it.
    public func resolve(_ plugin: String, forKey key: String) throws(PluginLoadError) -> String {
        let places = candidates(for: plugin)
        guard let path = places.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            let looked = places.joined(separator: " or ")
            throw PluginLoadError(code: .notFound, plugin: plugin, file: looked, key: key,
                                  detail: "no such file; build the plugin (swift build builds the example plugins) or fix \"plugin\" in the manifest")
        }
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    /// What is wrong with who may change the plugin file at `path` (symbolic links resolved):
    /// the file, or a folder above it, writable by every user, so that anyone on the machine
    /// can replace the code the host runs (sshd refuses key files like that; the host warns). A
    /// world-writable folder with the sticky bit (`/tmp`) keeps others from replacing what is in it.
    public static func permissionWarnings(forFileAt path: String) -> [String] {
        var warnings: [String] = []
        var status = stat()
        if stat(path, &status) == 0, status.st_mode & S_IWOTH != 0 {
            warnings.append("\(path) is writable by every user (mode 0\(String(status.st_mode & 0o7777, radix: 8))): anyone on this machine "
                            + "can replace the code this host runs; chmod o-w \(path)")
        }
        var folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        while true {
            let name = folder.path
            if stat(name, &status) == 0, status.st_mode & S_IWOTH != 0, status.st_mode & S_ISVTX == 0 {
                warnings.append("\(name) is writable by every user (mode 0\(String(status.st_mode & 0o7777, radix: 8))), so anyone on this "
                                + "machine can replace the plugins in it; chmod o-w \(name)")
            }
            guard name != "/", !name.isEmpty else { break }
            folder = folder.deletingLastPathComponent()
        }
        return warnings
    }

    /// Loads `plugin` (named by `key`'s entry), or returns it if this build of its file is
    /// already loaded. A rebuilt file (another inode, size or modification time than the build
    /// loaded before) is loaded from a private copy: `dlopen` of the same path would return the
    /// old image.
    public func load(_ plugin: String, forKey key: String) throws(PluginLoadError) -> LoadedPlugin {
        let canonical = try resolve(plugin, forKey: key)
        if let plugin = loaded[canonical] { return plugin }

        func failure(_ code: PluginLoadError.Code, _ detail: String) -> PluginLoadError {
            PluginLoadError(code: code, plugin: plugin, file: canonical, key: key, detail: detail)
        }
        guard let identity = LibraryImages.FileIdentity(path: canonical) else {
            throw failure(.notFound, "cannot be read: \(Errno.current)")
        }
        if let plugin = LibraryImages.loaded(canonical, identity: identity) {
            loaded[canonical] = plugin
            return plugin
        }
        let openedPath: String
        if let truncation = ELFSize.truncation(ofFileAt: canonical) { throw failure(.notLoadable, "cannot be loaded: it \(truncation)") }
        switch LibraryImages.privateCopy(of: canonical) {
        case .success(let copy): openedPath = copy
        case .failure(let error): throw failure(.notLoadable, "cannot be loaded: a private copy to load failed: \(error.reason)")
        }
        defer { unlink(openedPath) }
        // The copy, not the file: the file may have changed since it was checked.
        if let truncation = ELFSize.truncation(ofFileAt: openedPath) { throw failure(.notLoadable, "cannot be loaded: it \(truncation)") }
        let library: DynamicLibrary
        switch DynamicLibrary.open(openedPath) {
        case .success(let opened): library = opened
        case .failure(let error):
            let message = error.message.replacing(openedPath, with: canonical)
            throw failure(.notLoadable, "cannot be loaded: \(message); is it a shared library built for this machine?")
        }
        guard let entry = library.symbol(BM_PLUGIN_ENTRY_SYMBOL) else {
            throw failure(.missingEntry, "symbol \(BM_PLUGIN_ENTRY_SYMBOL) not found; is this a Batchman plugin?")
        }
        let entryFunction = unsafeBitCast(entry, to: (@convention(c) () -> UnsafePointer<bm_plugin>?).self)
        guard let descriptor = entryFunction() else {
            throw failure(.noDescriptor, "\(BM_PLUGIN_ENTRY_SYMBOL)() returned NULL instead of its descriptor")
        }
        // Read the fixed head first: a descriptor from another ABI may be shorter than ours.
        let head = UnsafeRawPointer(descriptor)
        let magic = head.loadUnaligned(as: UInt32.self)
        guard magic == BM_PLUGIN_MAGIC else {
            throw failure(.wrongMagic, "descriptor has magic 0x\(String(magic, radix: 16)), expected 0x\(String(BM_PLUGIN_MAGIC, radix: 16)); is this a Batchman plugin?")
        }
        let structSize = Int(head.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let abiMajor = head.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
        let abiMinor = head.loadUnaligned(fromByteOffset: 10, as: UInt16.self)
        guard abiMajor == BM_ABI_MAJOR else {
            throw failure(.abiMismatch, "plugin built for ABI \(abiMajor).\(abiMinor), this host supports \(BM_ABI_MAJOR); rebuild the plugin against this host's batchman_plugin.h")
        }
        let required = LoadedPlugin.version1_0DescriptorSize
        guard structSize >= required else {
            throw failure(.descriptorTooSmall, "descriptor is \(structSize) bytes, ABI \(BM_ABI_MAJOR).0 needs at least \(required); rebuild the plugin against this host's batchman_plugin.h")
        }
        let fields = descriptor.pointee
        guard fields.create != nil, fields.process_batch != nil, fields.destroy != nil else {
            let missing = [("create", fields.create == nil), ("process_batch", fields.process_batch == nil), ("destroy", fields.destroy == nil)]
                .filter(\.1).map(\.0).joined(separator: ", ")
            throw failure(.missingFunction, "descriptor has no \(missing) function")
        }
        let plugin = LoadedPlugin(descriptor: descriptor, path: canonical, loadedFrom: openedPath, library: library,
                                  structSize: structSize, abiMinor: Int(abiMinor))
        loaded[canonical] = plugin
        LibraryImages.remember(plugin, path: canonical, identity: identity)
        return plugin
    }
}
