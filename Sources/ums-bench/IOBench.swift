import ConcRT
import CSupport
import Foundation
import Synchronization
import UMS

/// `iops`: 256 contexts each do 4 KiB preads at random offsets of a 256 MiB
/// file that is in the page cache, for 1 s; ops/s over all of them. The
/// same preads by a pool of pthreads (one per CPU the process may use) give
/// `baseline-pthreads`. The file is a temporary one in $TMPDIR, written and
/// read once before the runs (so it is cached), and removed after.
///
/// Cached preads never wait: Blocking.pread's RWF_NOWAIT attempt serves
/// them on the virtual processor, and the ring is not touched. The figure
/// is the cost of the Blocking path itself beside a plain pread(2).
enum IOBench {
    static let fileBytes = 256 << 20
    static let block = 4096
    static let contexts = 256
    static let window: Int64 = 1_000_000_000

    static func run(_ h: Harness) throws {
        let path = NSTemporaryDirectory() + "ums-bench-iops-\(getpid())"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BenchFailure(description: "iops: open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd); unlink(path) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for i in 0..<(fileBytes >> 20) {
            for j in stride(from: 0, to: chunk.count, by: 512) { chunk[j] = UInt8(truncatingIfNeeded: i &+ j) }
            guard pwrite(fd, chunk, chunk.count, off_t(i << 20)) == chunk.count else {
                throw BenchFailure(description: "iops: writing the 256 MiB file failed: \(String(cString: strerror(errno)))")
            }
        }
        for i in 0..<(fileBytes >> 20) { _ = pread(fd, &chunk, chunk.count, off_t(i << 20)) }   // cached now

        let s = try Scheduler()
        defer { try? s.shutdown() }
        let ums = h.median("iops ums") { umsRun(s, fd) }
        h.report("iops", "ums", ums, "ops/s", "(\(contexts) contexts, 4 KiB random preads of a cached 256 MiB file, 1 s; \(s.virtualProcessorCount) VPs; \(s.ioPath))")
        let threads = SchedulerPolicy.availableConcurrency
        let base = h.median("iops baseline-pthreads", reps: 1) { pthreadRun(fd, threads: threads) }
        h.report("iops", "baseline-pthreads", base, "ops/s", "(\(threads) pthreads, the same preads)")
        h.progress("iops: \(s.statistics)")
    }

    /// One random block offset (xorshift).
    @inline(__always)
    static func nextOffset(_ x: inout UInt64) -> Int64 {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        return Int64((x % UInt64(fileBytes / block)) * UInt64(block))
    }

    static func umsRun(_ s: Scheduler, _ fd: Int32) -> Double {
        let ops = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let done = Event()
        let finished = Atomic<Int>(0)
        let t0 = csup_monotonic_ns()
        let end = t0 + window
        for c in 0..<contexts {
            s.scheduleTask {
                let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: block, alignment: 4096)
                defer { buf.deallocate() }
                var x = UInt64(c + 1) &* 0x9E37_79B9_7F4A_7C15
                var n = 0
                repeat {
                    for _ in 0..<64 {
                        do {
                            if try Blocking.pread(fd, into: buf, offset: nextOffset(&x)) != block { failures.add(1, ordering: .relaxed) }
                        } catch {
                            failures.add(1, ordering: .relaxed)
                        }
                    }
                    n += 64
                    Context.yield()   // 256 contexts share the VPs: take turns
                } while csup_monotonic_ns() < end
                ops.add(n, ordering: .relaxed)
                if finished.add(1, ordering: .acquiringAndReleasing).newValue == contexts { done.set() }
            }
        }
        done.wait()
        let secs = Double(csup_monotonic_ns() - t0) / 1e9
        precondition(failures.load(ordering: .relaxed) == 0, "iops: \(failures.load(ordering: .relaxed)) preads failed or came back short")
        return Double(ops.load(ordering: .relaxed)) / secs
    }

    static func pthreadRun(_ fd: Int32, threads: Int) -> Double {
        let ops = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let t0 = csup_monotonic_ns()
        let end = t0 + window
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            let th = Thread {
                let buf = UnsafeMutableRawPointer.allocate(byteCount: block, alignment: 4096)
                defer { buf.deallocate() }
                var x = UInt64(t + 1) &* 0x9E37_79B9_7F4A_7C15
                var n = 0
                repeat {
                    for _ in 0..<64 where pread(fd, buf, block, off_t(nextOffset(&x))) != block {
                        failures.add(1, ordering: .relaxed)
                    }
                    n += 64
                } while csup_monotonic_ns() < end
                ops.add(n, ordering: .relaxed)
                group.leave()
            }
            th.start()
        }
        group.wait()
        let secs = Double(csup_monotonic_ns() - t0) / 1e9
        precondition(failures.load(ordering: .relaxed) == 0, "iops baseline: preads failed or came back short")
        return Double(ops.load(ordering: .relaxed)) / secs
    }
}
