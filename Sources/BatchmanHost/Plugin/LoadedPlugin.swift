import Batchman
import CBatchmanPlugin
import FoundationEssentials

/// A plugin library whose descriptor passed every check; it makes instances.
public final class LoadedPlugin: @unchecked Sendable {
    // @unchecked: the descriptor is a static struct in a library that is never unloaded, and
    // nothing here mutates it.
    let descriptor: UnsafePointer<bm_plugin>
    /// The file it was loaded from.
    public let path: String
    public let name: String
    public let version: String
    private let library: DynamicLibrary

    /// The private copy `dlopen` loaded (removed since): see ``LibraryImages``.
    public let loadedFrom: String

    /// The descriptor's size as the plugin was compiled: fields of a later minor version than
    /// the plugin's lie beyond it and are absent.
    public let structSize: Int
    /// The minor ABI version the plugin was built for (the major is always this host's).
    public let abiMinor: Int

    /// The size of a 1.0 descriptor: what every 1.x plugin has at least. Not the size of this
    /// host's `bm_plugin`, which grows with each minor version; a host built against 1.1 still
    /// loads 1.0 plugins.
    public static let version1_0DescriptorSize =
        MemoryLayout<bm_plugin>.offset(of: \bm_plugin.destroy)! + MemoryLayout<UnsafeRawPointer>.size

    /// Whether the plugin's descriptor has the field that ends `offset` bytes into it: a host
    /// reads a field added in a later minor version only if this says so.
    public func hasField(endingAt offset: Int) -> Bool { offset <= structSize }

    init(descriptor: UnsafePointer<bm_plugin>, path: String, loadedFrom: String, library: DynamicLibrary, structSize: Int, abiMinor: Int) {
        self.descriptor = descriptor
        self.path = path
        self.loadedFrom = loadedFrom
        self.library = library
        self.structSize = structSize
        self.abiMinor = abiMinor
        self.name = descriptor.pointee.name.map { String(cString: $0) } ?? "unnamed"
        self.version = descriptor.pointee.version.map { String(cString: $0) } ?? "?"
    }

    /// Whether the plugin allows concurrent calls on one instance.
    public var isConcurrent: Bool { descriptor.pointee.flags & BM_FLAG_CONCURRENT != 0 }

    /// A processor for the Swift library backed by a new instance of this plugin for `key`:
    /// use a C-ABI plugin in-process without the host.
    ///
    /// - Parameters:
    ///   - workers: threads that call the plugin; they live as long as the process.
    ///   - directory: what the plugin sees as `manifest_dir` (ABI 1.1), against which it resolves
    ///     relative paths in `config`; the working directory when nil.
    /// - Throws: ``PluginLoadError`` if `create` refuses `config`.
    public func processor(
        forKey key: String, config: String = "{}", workers: Int = 1, logger: BatchmanLogger = .standardError, directory: String? = nil
    ) throws(PluginLoadError) -> any BatchProcessor<JobBytes, JobBytes> {
        let instance = try createInstance(plugin: path, key: key, config: config, debug: false, logger: logger,
                                          manifestDirectory: directory ?? FileManager.default.currentDirectoryPath)
        return PluginProcessor(instance: instance, workers: WorkerPool(name: "batchman-worker", threads: workers))
    }

    /// Makes the instance for `key`. Call on the control thread.
    /// - Throws: ``PluginLoadError`` with the plugin's own message if `create` refuses.
    /// - Parameters:
    ///   - manifestDirectory: what the plugin sees as `manifest_dir`.
    ///   - pauser: where the plugin's `pause` goes; `entry` is the manifest entry whose keys it may pause.
    ///   - timeout: the key's timeout, from which each call's `deadline_ns` is counted.
    func createInstance(
        plugin: String, key: String, config: String, debug: Bool, logger: PluginLogger,
        maxResultBytes: Int = KeySettings.defaultMaxResultBytes, manifestDirectory: String = "/", pauser: KeyPauser? = nil,
        entry: String? = nil, timeout: Duration? = nil
    ) throws(PluginLoadError) -> PluginInstance {
        let host = PluginHostServices(key: key, pluginName: name, logger: logger, showsDebug: debug, manifestDirectory: manifestDirectory,
                                      pauser: pauser, entry: entry)
        var errorBuffer = [CChar](repeating: 0, count: 1024)
        var key = key
        var config = config
        let site = "plugin \"\(name)\" (key \"\(key)\", in create)"
        let instance = key.withUTF8 { keyBytes in
            config.withUTF8 { configBytes in
                errorBuffer.withUnsafeMutableBufferPointer { error in
                    site.withCString { site in
                        ProcessExitGuard.during(site) {
                            descriptor.pointee.create(host.pointer, bm_str(keyBytes), bm_str(configBytes), error.baseAddress, error.count)
                        }
                    }
                }
            }
        }
        guard let instance else {
            host.release()
            let message = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw PluginLoadError(code: .createRefused, plugin: plugin, file: path, key: key,
                                  detail: "create() refused the configuration: \(message.isEmpty ? "(no message)" : message)")
        }
        return PluginInstance(plugin: self, key: key, handle: instance, host: host, maxResultBytes: maxResultBytes, timeout: timeout)
    }
}

extension bm_str {
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.init(ptr: UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), len: bytes.count)
    }
}
