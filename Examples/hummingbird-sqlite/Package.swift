// swift-tools-version:6.0
import PackageDescription

/// A Hummingbird 2 server whose handlers query SQLite through plain
/// libsqlite3 calls, on swift-ums's ConcRT scheduler or on Swift's default
/// executor (`--executor ums|default`). A package of its own so that the
/// library stays free of server dependencies: `load.sh` builds and loads it.
let package = Package(
    name: "hummingbird-sqlite",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-ums", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libsqlite3 (Debian: libsqlite3-dev), found with pkg-config.
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .executableTarget(
            name: "hummingbird-sqlite",
            dependencies: [
                "CSQLite",
                .product(name: "ConcRT", package: "swift-ums"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
