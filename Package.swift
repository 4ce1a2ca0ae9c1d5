// swift-tools-version:6.0
import PackageDescription

/// swift-argument-parser, used by ums-bench and every example.
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "swift-ums",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "UMS", targets: ["UMS"]),
        .library(name: "ConcRT", targets: ["ConcRT"]),
        .library(name: "PPL", targets: ["PPL"]),
        .library(name: "Agents", targets: ["Agents"]),
        .library(name: "ConcurrentContainers", targets: ["ConcurrentContainers"]),
        .executable(name: "ums-bench", targets: ["ums-bench"]),
        .executable(name: "ums-sample", targets: ["ums-sample"]),
        // Optional: scheduler and UMS statistics as swift-metrics counters and gauges.
        .library(name: "ConcRTMetrics", targets: ["ConcRTMetrics"]),
        // Chrome trace-event JSON: validation and a PNG timeline (no dependencies).
        .library(name: "TraceTimeline", targets: ["TraceTimeline"]),
        .executable(name: "ums-trace", targets: ["ums-trace"]),
    ],
    dependencies: [
        // `swift package generate-documentation` (DocC catalogs per module).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // Command-line parsing for ums-bench and the examples.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // FileDescriptor, FilePath and Errno for Blocking's typed overloads.
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        // Metrics API for the optional ConcRTMetrics product (backends such as
        // swift-prometheus or swift-otel are the application's choice).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    ],
    targets: [
        // liburing (Debian: liburing-dev), found with pkg-config: the
        // per-VP submission and completion queues (CSupport/uring.c).
        .systemLibrary(
            name: "CURing",
            path: "Sources/CURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        // libsqlite3 (Debian: libsqlite3-dev), found with pkg-config: a real
        // C library whose busy handler sleeps unwrapped. ConcRTTests only, so
        // building the library and the examples does not need it.
        .systemLibrary(
            name: "CSQLite3",
            path: "Sources/CSQLite3",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // C and assembly: context switch, stacks, futex, syscalls, queues.
        .target(
            name: "CSupport",
            dependencies: ["CURing"],
            path: "CSupport",
            exclude: ["tests"],
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // Layer 1: Windows 7 User-Mode Scheduling, rebuilt on pthreads.
        .target(name: "UMS", dependencies: ["CSupport"]),
        // Layer 2: ConcRT-style scheduler on the UMS core.
        .target(name: "ConcRT", dependencies: ["UMS", "CSupport", "ConcurrentContainers",
                                              .product(name: "SystemPackage", package: "swift-system")],
                exclude: ["Idle/README.md"]),
        // Layer 3: PPL-style task API.
        .target(name: "PPL", dependencies: ["ConcRT"]),
        // Concurrent containers (ConcRT's concurrent_queue, concurrent_vector,
        // concurrent_unordered_map): non-blocking, usable from any thread.
        .target(name: "ConcurrentContainers", dependencies: ["CSupport", "UMS"]),
        // Optional: publishes Scheduler.statistics and UMS.statistics through swift-metrics.
        .target(name: "ConcRTMetrics", dependencies: ["ConcRT", "UMS", .product(name: "Metrics", package: "swift-metrics")]),
        // Chrome trace-event JSON: parse, validate, render a PNG timeline. Foundation only.
        .target(name: "TraceTimeline"),
        .executableTarget(name: "ums-trace", dependencies: ["TraceTimeline", argumentParser], path: "Sources/ums-trace"),
        // Asynchronous Agents Library: message blocks and agents.
        .target(name: "Agents", dependencies: ["ConcRT", "UMS", "CSupport"]),
        // Heap-allocation counter, linked into the benchmark only.
        .target(name: "CMallocCounter", path: "Sources/CMallocCounter"),
        .executableTarget(name: "ums-bench", dependencies: ["UMS", "ConcRT", "PPL", "Agents", "ConcurrentContainers", "CSupport", "CMallocCounter", argumentParser],
                          path: "Sources/ums-bench"),
        .executableTarget(name: "ums-sample", dependencies: ["UMS", argumentParser], path: "Examples/ums-sample"),
        .executableTarget(name: "fib", dependencies: ["PPL", "ConcRT", argumentParser], path: "Examples/fib"),
        .executableTarget(name: "nqueens", dependencies: ["PPL", "ConcRT", "UMS", argumentParser], path: "Examples/nqueens"),
        .executableTarget(name: "sort", dependencies: ["PPL", "ConcRT", argumentParser], path: "Examples/sort"),
        .executableTarget(name: "grep", dependencies: ["PPL", "ConcRT", "UMS", argumentParser], path: "Examples/grep"),
        .executableTarget(name: "echo-server", dependencies: ["PPL", "ConcRT", "UMS", argumentParser], path: "Examples/echo-server"),
        // Shared by the test targets: resource counts, eventually, boxes,
        // counters (no XCTest dependency: failures are thrown).
        .target(name: "TestSupport", dependencies: ["UMS", "CSupport"], path: "Tests/TestSupport"),
        .testTarget(name: "UMSTests", dependencies: ["UMS", "CSupport", "TestSupport"]),
        .testTarget(name: "ConcRTTests", dependencies: ["ConcRT", "UMS", "CSupport", "TestSupport", "CSQLite3",
                                                       .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "PPLTests", dependencies: ["PPL", "ConcRT", "UMS", "CSupport", "TestSupport"]),
        .testTarget(name: "AgentsTests", dependencies: ["Agents", "ConcRT", "UMS", "TestSupport"]),
        .testTarget(name: "ConcurrentContainersTests", dependencies: ["ConcurrentContainers", "ConcRT", "UMS", "TestSupport"]),
        .testTarget(name: "ExamplesTests", dependencies: []),
        .testTarget(name: "ConcRTMetricsTests", dependencies: ["ConcRTMetrics", "ConcRT", "UMS",
                                                              .product(name: "Metrics", package: "swift-metrics")]),
        .testTarget(name: "TraceTimelineTests", dependencies: ["TraceTimeline", "ConcRT"]),
    ],
    swiftLanguageModes: [.v6]
)
