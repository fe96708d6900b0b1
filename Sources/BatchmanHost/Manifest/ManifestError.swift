/// Everything wrong with a manifest, each problem at its JSON path.
public struct ManifestError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// Where in the document: `keys.logger.frequency`, or `line 3, column 7` for a syntax error.
        public let path: String
        public let message: String

        public var description: String { "\(path): \(message)" }
    }

    /// The manifest file as it was named.
    public let file: String
    public let problems: [Problem]

    public var description: String {
        problems.map { "\(file): \($0)" }.joined(separator: "\n")
    }
}
