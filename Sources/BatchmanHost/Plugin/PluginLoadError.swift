/// Why a plugin could not be loaded or could not make an instance; the description says which
/// file, what was found, and what to do.
public struct PluginLoadError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }

        public static let notFound = Code(name: "not found")
        public static let notLoadable = Code(name: "not loadable")
        public static let missingEntry = Code(name: "missing entry symbol")
        public static let noDescriptor = Code(name: "no descriptor")
        public static let wrongMagic = Code(name: "wrong magic")
        public static let abiMismatch = Code(name: "ABI mismatch")
        public static let descriptorTooSmall = Code(name: "descriptor too small")
        public static let missingFunction = Code(name: "missing function")
        public static let createRefused = Code(name: "create refused")
        /// The worker process of an isolated key could not start or died before it was ready.
        public static let workerFailed = Code(name: "worker failed")

        static let all: [Code] = [
            .notFound, .notLoadable, .missingEntry, .noDescriptor, .wrongMagic, .abiMismatch, .descriptorTooSmall, .missingFunction,
            .createRefused, .workerFailed,
        ]

        /// The code called `name` (as a worker process reports it), or nil for a name no code has.
        static func named(_ name: String) -> Code? { all.first { $0.name == name } }
    }

    public let code: Code
    /// The plugin as the manifest names it.
    public let plugin: String
    /// The file it was loaded from, or the places it was looked for.
    public let file: String
    /// The key whose entry names the plugin.
    public let key: String
    /// What went wrong and what to do.
    public let detail: String

    public var description: String {
        "key \"\(key)\": plugin \"\(plugin)\" (\(file)): \(detail)"
    }
}
