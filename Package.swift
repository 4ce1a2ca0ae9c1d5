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
        .library(name: "ConcurrentContainers", targets: ["ConcurrentContainers"]),
        .executable(name: "ums-bench", targets: ["ums-bench"]),
        .executable(name: "ums-sample", targets: ["ums-sample"]),
    ],
    dependencies: [
        // `swift package generate-documentation` (DocC catalogs per module).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // Command-line parsing for ums-bench and the examples.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // FileDescriptor, FilePath and Errno for Blocking's typed overloads.
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // liburcu (Debian: liburcu-dev), found with pkg-config.
        .systemLibrary(
            name: "CURCU",
            path: "Sources/CURCU",
            pkgConfig: "liburcu",
            providers: [.apt(["liburcu-dev"])]
        ),
        // liburing (Debian: liburing-dev), found with pkg-config: the
        // per-VP submission and completion queues (CSupport/uring.c).
        .systemLibrary(
            name: "CURing",
            path: "Sources/CURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        // liburcu's rculfhash (liburcu-cds) on the bulletproof RCU flavor
        // (liburcu-bp), for ConcurrentDictionary; see its shim.h.
        .systemLibrary(
            name: "CURCUCDS",
            path: "Sources/CURCUCDS",
            pkgConfig: "liburcu-bp",
            providers: [.apt(["liburcu-dev"])]
        ),
        // C and assembly: context switch, stacks, futex, syscalls, queues.
        .target(
            name: "CSupport",
            dependencies: ["CURCU", "CURing"],
            path: "CSupport",
            exclude: ["tests"],
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // Layer 1: Windows 7 User-Mode Scheduling, rebuilt on pthreads.
        .target(name: "UMS", dependencies: ["CSupport"]),
        // Layer 2: ConcRT-style scheduler on the UMS core.
        .target(name: "ConcRT", dependencies: ["UMS", "CSupport", .product(name: "SystemPackage", package: "swift-system")],
                exclude: ["Idle/README.md"]),
        // Layer 3: PPL-style task API.
        .target(name: "PPL", dependencies: ["ConcRT"]),
        // Concurrent containers (ConcRT's concurrent_queue, concurrent_vector,
        // concurrent_unordered_map): non-blocking, usable from any thread.
        .target(name: "ConcurrentContainers", dependencies: ["CURCUCDS"]),
        // Heap-allocation counter, linked into the benchmark only.
        .target(name: "CMallocCounter", path: "Sources/CMallocCounter"),
        .executableTarget(name: "ums-bench", dependencies: ["UMS", "ConcRT", "PPL", "ConcurrentContainers", "CSupport", "CMallocCounter", argumentParser],
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
        .testTarget(name: "ConcRTTests", dependencies: ["ConcRT", "UMS", "CSupport", "TestSupport",
                                                       .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "PPLTests", dependencies: ["PPL", "ConcRT", "UMS", "CSupport", "TestSupport"]),
        .testTarget(name: "ConcurrentContainersTests", dependencies: ["ConcurrentContainers", "ConcRT", "UMS", "TestSupport"]),
        .testTarget(name: "ExamplesTests", dependencies: []),
    ],
    swiftLanguageModes: [.v6]
)
