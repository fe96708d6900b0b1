import Batchman
import BatchmanTesting
import Testing

@Suite struct ConfigValidationTests {
    let echo = TestProcessor<String, String>.echo()

    @Test func rejectsMaxBatchSizeOfZeroOrLess() {
        for size in [0, -1] {
            #expect(throws: BatchmanConfigurationError(.invalidMaxBatchSize)) {
                try makeBatchman(BatchmanConfig(maxBatchSize: size), processor: echo)
            }
        }
        #expect(BatchmanConfigurationError(.invalidMaxBatchSize).description == "Max batch size must be greater than 0")
    }

    @Test func rejectsFrequencyOfZeroOrLess() {
        for frequency in [Duration.zero, .milliseconds(-5)] {
            #expect(throws: BatchmanConfigurationError(.invalidFrequency)) {
                try makeBatchman(BatchmanConfig(frequency: frequency), processor: echo)
            }
        }
        #expect(BatchmanConfigurationError(.invalidFrequency).description == "Frequency must be greater than 0")
    }

    @Test func rejectsSeveralProcessorsWithoutInstancePerKey() {
        let factories: [String: TestBatchman.ProcessorFactory] = ["default": { _ in echo }, "logger": { _ in echo }]
        let error = #expect(throws: BatchmanConfigurationError.self) {
            try TestBatchman(config: BatchmanConfig(useInstancePerKey: false), processors: factories, clock: ManualClock())
        }
        #expect(error?.description == "Multiple Batch processors can only be used when useInstancePerKey is true")
    }

    @Test func rejectsKeyOverridesWithoutInstancePerKey() {
        let config = BatchmanConfig(useInstancePerKey: false, keyConfigOverrides: [KeyConfigOverride(key: "logger", maxBatchSize: 2)])
        let error = #expect(throws: BatchmanConfigurationError.self) { try makeBatchman(config, processor: echo) }
        #expect(error?.description == "Cannot use keyConfigOverrides when useInstancePerKey is false")
    }

    @Test func rejectsInvalidValuesInKeyOverridesNamingTheKey() {
        let badFrequency = BatchmanConfig(keyConfigOverrides: [KeyConfigOverride(key: "logger", frequency: .zero)])
        let frequencyError = #expect(throws: BatchmanConfigurationError.self) { try makeBatchman(badFrequency, processor: echo) }
        #expect(frequencyError == BatchmanConfigurationError(.invalidFrequency, key: "logger"))
        #expect(frequencyError?.description == "Frequency must be greater than 0 (in keyConfigOverrides for key \"logger\")")

        let badSize = BatchmanConfig(keyConfigOverrides: [KeyConfigOverride(key: "analytics", maxBatchSize: 0)])
        let sizeError = #expect(throws: BatchmanConfigurationError.self) { try makeBatchman(badSize, processor: echo) }
        #expect(sizeError == BatchmanConfigurationError(.invalidMaxBatchSize, key: "analytics"))
    }

    @Test func rejectsAFactoryMapWithoutADefault() {
        let error = #expect(throws: BatchmanConfigurationError.self) {
            try TestBatchman(processors: ["logger": { _ in echo }], clock: ManualClock())
        }
        #expect(error?.description == "Batch processor must have a default processor")
    }

    @Test func hasTheSeedsDefaults() throws {
        let config = BatchmanConfig()
        #expect(config.defaults.frequency == .milliseconds(5000))
        #expect(config.defaults.maxBatchSize == 10)
        #expect(config.defaults.debug == false)
        #expect(config.useInstancePerKey == true)
        #expect(config.keyConfigOverrides.isEmpty)
        let batchman = try makeBatchman(processor: echo)
        #expect(batchman.config == config)
    }

    @Test func keyOverridesFallBackToTheDefaultsFieldByField() {
        let config = BatchmanConfig(
            frequency: .seconds(5), maxBatchSize: 20,
            keyConfigOverrides: [
                KeyConfigOverride(key: "logger", frequency: .seconds(10)),
                KeyConfigOverride(key: "time-sensitive", frequency: .milliseconds(500), maxBatchSize: 4),
            ])
        #expect(config.config(forKey: "logger") == BatcherConfig(frequency: .seconds(10), maxBatchSize: 20))
        #expect(config.config(forKey: "time-sensitive") == BatcherConfig(frequency: .milliseconds(500), maxBatchSize: 4))
        #expect(config.config(forKey: "other") == BatcherConfig(frequency: .seconds(5), maxBatchSize: 20))
    }
}
