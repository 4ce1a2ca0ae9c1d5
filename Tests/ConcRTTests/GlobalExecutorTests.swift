import Foundation
import XCTest
@testable import ConcRT
import CSupport
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `Scheduler.installAsGlobalExecutor()`: the install lasts for the life
/// of the process, so the checks run in a child process (a re-exec of the
/// test binary with `CONCRT_GLOBAL_CHILD=1`), and the parent asserts on its
/// exit status and output.
final class GlobalExecutorTests: XCTestCase {
    private static let childVariable = "CONCRT_GLOBAL_CHILD"

    func testInstalledSchedulerRunsPlainTasksSleepsAndBlockingCalls() throws {
        if ProcessInfo.processInfo.environment[Self.childVariable] == "1" {
            try runChild()
            return
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        p.arguments = ["ConcRTTests.GlobalExecutorTests/testInstalledSchedulerRunsPlainTasksSleepsAndBlockingCalls"]
        var env = ProcessInfo.processInfo.environment
        env[Self.childVariable] = "1"
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        // Bounded: the child exits on its own after at most 20 s per check;
        // past 3 minutes it is killed (and the test fails on its status).
        let watchdog = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 180, execute: watchdog)
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        watchdog.cancel()
        XCTAssertEqual(p.terminationStatus, 0, out)
        XCTAssertTrue(out.contains("GLOBAL-CHILD-OK"), out)
        XCTAssertFalse(out.contains("GLOBAL-CHILD-FAILED"), out)
    }

    // MARK: The child

    @TaskLocal static var label: String = "none"

    /// Fails the child with a message the parent shows.
    private func check(_ ok: Bool, _ what: String) {
        if !ok {
            failures += 1
            print("GLOBAL-CHILD-FAILED: \(what)")
        }
    }
    private var failures = 0

    /// Waits for an async body from this (XCTest's main) thread, running
    /// the main run loop meanwhile: the body runs as a plain `Task`, so on
    /// the global executor. Bounded: a body that never finishes fails the
    /// child instead of hanging it.
    private func finish<T: Sendable>(_ what: String, seconds: Double = 20, _ body: @escaping @Sendable () async throws -> T) -> T? {
        let box = LockedBox<Result<T, any Error>?>(nil)
        Task {
            let r: Result<T, any Error>
            do { r = .success(try await body()) } catch { r = .failure(error) }
            box.set(r)
        }
        // Run the main run loop while waiting, so main-actor jobs (the main
        // queue) run on this thread.
        let deadline = Date().addingTimeInterval(seconds)
        while box.get() == nil {
            if Date() > deadline {
                check(false, "\(what): did not finish in \(seconds) s")
                return nil
            }
            _ = RunLoop.main.run(mode: .default, before: Date().addingTimeInterval(0.005))
        }
        switch box.get()! {
        case .success(let v): return v
        case .failure(let e): check(false, "\(what): threw \(e)"); return nil
        }
    }

    private func runChild() throws {
        // One VP: a job that held its VP while blocked would keep the
        // job that releases it from ever running (each check below would
        // time out instead).
        let s = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1, detectUnwrappedBlocking: true))
        try s.installAsGlobalExecutor()
        check(Scheduler.globalExecutorScheduler === s, "globalExecutorScheduler is not the installed scheduler")
        // A second install is refused with a clear error.
        do {
            let other = try Scheduler(policy: SchedulerPolicy(minConcurrency: 1, maxConcurrency: 1))
            defer { try? other.shutdown() }
            try other.installAsGlobalExecutor()
            check(false, "a second installAsGlobalExecutor() did not throw")
        } catch {
            check("\(error)".contains("already installed"), "second install: \(error)")
        }

        // 1. Plain tasks (no executor preference) run on the VPs.
        let onVP = finish("plain tasks") { () async -> Int in
            await withTaskGroup(of: Bool.self) { g in
                for _ in 0..<200 { g.addTask { Context.current != nil } }
                var n = 0
                for await on in g where on { n += 1 }
                return n
            }
        }
        check(onVP == 200, "plain tasks on a VP: \(onVP.map(String.init) ?? "none") of 200")

        // 2. Task.sleep goes through the delay / deadline hooks and resumes
        //    on a VP, after at least the time asked.
        let slept = finish("Task.sleep") { () async throws -> (Bool, Int64) in
            let t0 = csup_monotonic_ns()
            try await Task.sleep(for: .milliseconds(20))
            return (Context.current != nil, csup_monotonic_ns() - t0)
        }
        check(slept?.0 == true, "Task.sleep resumed on a VP")
        check((slept?.1 ?? 0) >= 20_000_000, "Task.sleep(20 ms) returned after \(slept?.1 ?? 0) ns")

        // 3. The main actor stays on the main thread.
        let main = finish("MainActor.run") { await MainActor.run { Thread.isMainThread } }
        check(main == true, "MainActor.run ran off the main thread")

        // 4. A wrapped blocking read in a global job gives the only VP back:
        //    the task that writes the pipe is queued behind it.
        // 5. So does an unwrapped read(2) (detectUnwrappedBlocking).
        for wrapped in [true, false] {
            let name = wrapped ? "wrapped read" : "unwrapped read"
            let got = finish(name) { () async -> Int in
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else { return -1 }
                defer { close(fds[0]); close(fds[1]) }
                let (r, w) = (fds[0], fds[1])
                return await withTaskGroup(of: Int.self) { g in
                    g.addTask {
                        var byte: UInt8 = 0
                        if wrapped {
                            return withUnsafeMutableBytes(of: &byte) { (try? Blocking.read(r, into: $0)) ?? -2 }
                        }
                        return Glibc.read(r, &byte, 1)
                    }
                    g.addTask {
                        // Let the reader block first (one VP: it runs first
                        // only if this yields).
                        try? await Task.sleep(for: .milliseconds(5))
                        var byte: UInt8 = 7
                        return Glibc.write(w, &byte, 1) == 1 ? 0 : -3
                    }
                    var total = 0
                    for await v in g { total += v }
                    return total
                }
            }
            check(got == 1, "\(name): \(got.map(String.init) ?? "none")")
        }

        // 6. A task-local bound in a task survives a blocking call and a
        //    hop through the executor.
        let local = finish("task-local") { () async -> String in
            await Self.$label.withValue("kept") {
                try? Blocking.sleep(for: .milliseconds(1))
                await Task.yield()
                return Self.label
            }
        }
        check(local == "kept", "task-local after a blocking call and a yield: \(local ?? "none")")

        // Exit here: after a failed check a job may still hold the only VP
        // (a read nobody will complete), and the parent must not wait for
        // a process that cannot finish.
        print(failures == 0 ? "GLOBAL-CHILD-OK" : "GLOBAL-CHILD-FAILED: \(failures) checks")
        fflush(nil)
        _exit(failures == 0 ? 0 : 1)
    }
}

/// A value guarded by a lock, for handing a result across threads.
private final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
}
