import TestSupport
import Foundation
import SystemPackage
import XCTest
@testable import ConcRT
#if canImport(Glibc)
import Glibc
#endif

// Blocking with swift-system types: FileDescriptor in, Errno out, on a
// context (ring path) and on a plain thread.
final class BlockingSystemTypesTests: XCTestCase {
    func testFileDescriptorOverloadsAndErrnoOnAContext() throws {
        let s = try makeScheduler(2)
        let failures = MigrationSafeMutex<[String]>([])
        let done = runAsTask(s) {
            do {
                let (r, w) = try FileDescriptor.pipe()
                let peer = runAsTask(s) {
                    let msg = Array("hello, system".utf8)
                    do { try msg.withUnsafeBytes { try Blocking.writeAll(w, from: $0) }; try Blocking.close(w) }
                    catch { failures.withLock { $0.append("writer: \(error)") } }
                }
                var got: [UInt8] = []
                var buf = [UInt8](repeating: 0, count: 4)
                while true {
                    let n = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
                    if n == 0 { break }
                    got += buf[0..<n]
                }
                if String(decoding: got, as: UTF8.self) != "hello, system" { failures.withLock { $0.append("read \(got)") } }
                if !peer.wait(timeout: .seconds(10)) { failures.withLock { $0.append("writer did not finish") } }
                try Blocking.close(r)
                // A closed descriptor: the error carries Errno.
                do {
                    _ = try buf.withUnsafeMutableBytes { try Blocking.read(r, into: $0) }
                    failures.withLock { $0.append("read of a closed descriptor did not throw") }
                } catch let e as BlockingError {
                    if e.code != .badFileDescriptor || e.call != "read" { failures.withLock { $0.append("got \(e)") } }
                }
                // open / pwrite / pread / fsync through FilePath.
                let path = FilePath(NSTemporaryDirectory() + "blocking-system-\(getpid())")
                let f = try Blocking.open(path, .readWrite, options: [.create, .truncate], permissions: [.ownerReadWrite])
                let data = Array("0123456789".utf8)
                _ = try data.withUnsafeBytes { try Blocking.pwrite(f, from: $0, offset: 0) }
                try Blocking.fsync(f, dataOnly: true)
                var back = [UInt8](repeating: 0, count: 4)
                let k = try back.withUnsafeMutableBytes { try Blocking.pread(f, into: $0, offset: 3) }
                if k != 4 || back != Array("3456".utf8) { failures.withLock { $0.append("pread \(k) \(back)") } }
                try Blocking.close(f)
                unlink(path.string)
                do {
                    _ = try Blocking.open(FilePath("/nonexistent-dir/x"), .readOnly)
                    failures.withLock { $0.append("open of a missing path did not throw") }
                } catch let e as BlockingError {
                    if e.code != .noSuchFileOrDirectory { failures.withLock { $0.append("open: \(e)") } }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        XCTAssertTrue(done.wait(timeout: .seconds(30)))
        XCTAssertEqual(failures.withLock { $0 }, [])
        try s.shutdown(timeout: .seconds(10))
    }
}
