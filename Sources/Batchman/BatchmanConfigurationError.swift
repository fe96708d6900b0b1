/// A configuration that Batchman refuses, with the seed's message.
public struct BatchmanConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, independent of the key it is wrong for.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Value: Hashable, Sendable {
            case invalidFrequency, invalidMaxBatchSize, multipleProcessorsWithoutInstancePerKey
            case overridesWithoutInstancePerKey, missingDefaultProcessor
            case invalid(String)
        }
        let value: Value
        init(_ value: Value) { self.value = value }

        public static let invalidFrequency = Code(.invalidFrequency)
        public static let invalidMaxBatchSize = Code(.invalidMaxBatchSize)
        public static let multipleProcessorsWithoutInstancePerKey = Code(.multipleProcessorsWithoutInstancePerKey)
        public static let overridesWithoutInstancePerKey = Code(.overridesWithoutInstancePerKey)
        public static let missingDefaultProcessor = Code(.missingDefaultProcessor)
        /// Any other invalid value, with its message.
        public static func invalid(_ message: String) -> Code { Code(.invalid(message)) }

        /// The seed's message for this code.
        public var description: String {
            switch value {
            case .invalidFrequency: "Frequency must be greater than 0"
            case .invalidMaxBatchSize: "Max batch size must be greater than 0"
            case .multipleProcessorsWithoutInstancePerKey:
                "Multiple Batch processors can only be used when useInstancePerKey is true"
            case .overridesWithoutInstancePerKey: "Cannot use keyConfigOverrides when useInstancePerKey is false"
            case .missingDefaultProcessor: "Batch processor must have a default processor"
            case .invalid(let message): message
            }
        }
    }

    public let code: Code
    /// The key whose override is wrong; nil for the defaults and instance-wide settings.
    public let key: String?

    public init(_ code: Code, key: String? = nil) {
        self.code = code
        self.key = key
    }

    public var description: String {
        guard let key else { return code.description }
        return "\(code.description) (in keyConfigOverrides for key \"\(key)\")"
    }
}
