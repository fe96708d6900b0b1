// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "Batchman",
    products: [
        .library(name: "Batchman", targets: ["Batchman"]),
        .library(name: "BatchmanTesting", targets: ["BatchmanTesting"]),
        .library(name: "BatchmanHost", targets: ["BatchmanHost"]),
        .library(name: "BatchmanNATS", targets: ["BatchmanNATS"]),
        .executable(name: "batchman", targets: ["BatchmanCLI"]),
        // Example plugins: each is a shared library the host loads with dlopen.
        .library(name: "EchoPlugin", type: .dynamic, targets: ["EchoPlugin"]),
        .library(name: "SumPlugin", type: .dynamic, targets: ["SumPlugin"]),
        .library(name: "LogPlugin", type: .dynamic, targets: ["LogPlugin"]),
        .library(name: "NoopPlugin", type: .dynamic, targets: ["NoopPlugin"]),
        // Benchmarks: swift run -c release batchman-bench
        .executable(name: "batchman-bench", targets: ["BatchmanBench"]),
        // Only for the host's tests: misbehaves on request.
        .library(name: "BatchmanTestPlugin", type: .dynamic, targets: ["BatchmanTestPlugin"]),
        .library(name: "BatchmanConcurrentTestPlugin", type: .dynamic, targets: ["BatchmanConcurrentTestPlugin"]),
    ],
    targets: [
        .target(name: "Batchman"),
        .target(name: "BatchmanTesting", dependencies: ["Batchman"]),
        .target(name: "CBatchmanPlugin"),
        .target(name: "CBatchmanSystem"),
        // A NATS and JetStream client of our own (no dependency): the host's scale-out.
        .target(name: "BatchmanNATS"),
        .target(name: "BatchmanHost", dependencies: ["Batchman", "BatchmanNATS", "CBatchmanPlugin", "CBatchmanSystem"]),
        .executableTarget(name: "BatchmanCLI", dependencies: ["BatchmanHost"]),

        .target(name: "EchoPlugin", dependencies: ["CBatchmanPlugin"], path: "Plugins/EchoPlugin", publicHeadersPath: "."),
        .target(name: "SumPlugin", dependencies: ["CBatchmanPlugin"], path: "Plugins/SumPlugin", publicHeadersPath: "."),
        .target(name: "LogPlugin", dependencies: ["CBatchmanPlugin"], path: "Plugins/LogPlugin"),
        .target(name: "NoopPlugin", dependencies: ["CBatchmanPlugin"], path: "Plugins/NoopPlugin", publicHeadersPath: "."),
        .executableTarget(name: "BatchmanBench", dependencies: ["Batchman", "BatchmanHost", "BatchmanNATS", "CBatchmanSystem"], path: "Benchmarks/BatchmanBench"),
        .target(name: "BatchmanTestPlugin", dependencies: ["CBatchmanPlugin"], path: "Tests/Plugins/BatchmanTestPlugin", publicHeadersPath: "."),
        // The same plugin with BM_FLAG_CONCURRENT (its file includes the one above).
        .target(name: "BatchmanConcurrentTestPlugin", dependencies: ["CBatchmanPlugin"], path: "Tests/Plugins/BatchmanConcurrentTestPlugin",
                publicHeadersPath: "."),

        .testTarget(name: "BatchmanTests", dependencies: ["Batchman", "BatchmanTesting"]),
        .testTarget(name: "BatchmanNATSTests", dependencies: ["BatchmanNATS"]),
        .testTarget(name: "BatchmanHostTests", dependencies: ["BatchmanHost", "Batchman", "BatchmanNATS", "BatchmanTesting", "CBatchmanSystem"]),
    ]
)

// Swift 6 language mode everywhere, plus the upcoming features we hold ourselves to.
let cTargets: Set<String> = ["CBatchmanPlugin", "CBatchmanSystem", "EchoPlugin", "SumPlugin", "NoopPlugin", "BatchmanTestPlugin",
                              "BatchmanConcurrentTestPlugin"]
for target in package.targets where !cTargets.contains(target.name) {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
