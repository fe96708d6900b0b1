// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "Batchman",
    products: [
        .library(name: "Batchman", targets: ["Batchman"]),
        .library(name: "BatchmanTesting", targets: ["BatchmanTesting"]),
    ],
    targets: [
        .target(name: "Batchman"),
        .target(name: "BatchmanTesting", dependencies: ["Batchman"]),
        .testTarget(name: "BatchmanTests", dependencies: ["Batchman", "BatchmanTesting"]),
    ]
)

// Swift 6 language mode everywhere, plus the upcoming features we hold ourselves to.
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
