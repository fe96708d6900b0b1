// swift-tools-version: 6.0
// wordcount: a Batchman plugin in Swift, the Swift kit's starting point. A package of its own:
// it depends on nothing but the ABI header (a copy in Sources/CBatchmanPluginABI/include).
import PackageDescription

let package = Package(
    name: "WordCount",
    products: [
        // A shared library the host loads with dlopen: libWordCount.so.
        .library(name: "WordCount", type: .dynamic, targets: ["WordCount"]),
    ],
    targets: [
        .target(name: "CBatchmanPluginABI"),
        .target(name: "WordCount", dependencies: ["CBatchmanPluginABI"]),
    ]
)
