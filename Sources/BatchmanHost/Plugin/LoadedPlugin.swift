import Batchman
import CBatchmanPlugin

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

    init(descriptor: UnsafePointer<bm_plugin>, path: String, loadedFrom: String, library: DynamicLibrary) {
        self.descriptor = descriptor
        self.path = path
        self.loadedFrom = loadedFrom
        self.library = library
        self.name = descriptor.pointee.name.map { String(cString: $0) } ?? "unnamed"
        self.version = descriptor.pointee.version.map { String(cString: $0) } ?? "?"
    }

    /// Whether the plugin allows concurrent calls on one instance.
    public var isConcurrent: Bool { descriptor.pointee.flags & BM_FLAG_CONCURRENT != 0 }

    /// A processor for the Swift library backed by a new instance of this plugin for `key`:
    /// use a C-ABI plugin in-process without the host.
    ///
    /// - Parameter workers: threads that call the plugin; they live as long as the process.
    /// - Throws: ``PluginLoadError`` if `create` refuses `config`.
    public func processor(
        forKey key: String, config: String = "{}", workers: Int = 1, logger: BatchmanLogger = .standardError
    ) throws(PluginLoadError) -> any BatchProcessor<JobBytes, JobBytes> {
        let instance = try createInstance(plugin: path, key: key, config: config, debug: false, logger: logger)
        return PluginProcessor(instance: instance, workers: WorkerPool(name: "batchman-worker", threads: workers))
    }

    /// Makes the instance for `key`. Call on the control thread.
    /// - Throws: ``PluginLoadError`` with the plugin's own message if `create` refuses.
    func createInstance(plugin: String, key: String, config: String, debug: Bool, logger: PluginLogger) throws(PluginLoadError) -> PluginInstance {
        let host = PluginHostServices(key: key, pluginName: name, logger: logger, showsDebug: debug)
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
        return PluginInstance(plugin: self, key: key, handle: instance, host: host)
    }
}

extension bm_str {
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.init(ptr: UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), len: bytes.count)
    }
}
