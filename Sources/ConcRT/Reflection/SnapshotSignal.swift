import CSupport
import Synchronization
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// Snapshots on demand, for a program that seems hung: when the signal
/// arrives, a helper pthread writes ``Scheduler/snapshot(backtraces:)`` of
/// every live scheduler to stderr. The signal handler itself only writes a
/// byte to a pipe (CSupport/signalpipe.c); everything else runs on the
/// helper thread, outside signal context, while the VPs keep running.
/// [procdump /r; Go's SIGQUIT dump, without the exit]
///
/// Opt in with the environment (read when the first scheduler starts):
///
///     UMS_SNAPSHOT_SIGNAL=USR1 ./server &   kill -USR1 $!
///
/// or with ``Scheduler/dumpSnapshotsOnSignal(_:)``.
enum SnapshotSignal {
    private static let live = SchedulerSet()
    private static let environmentRead = Atomic<Bool>(false)
    private static let readers = MigrationSafeMutex<Set<Int32>>([])

    static func register(_ s: Scheduler) { live.insert(s) }
    static func unregister(_ s: Scheduler) { live.remove(s) }

    static func installFromEnvironment() {
        if environmentRead.exchange(true, ordering: .relaxed) { return }
        guard let v = getenv("UMS_SNAPSHOT_SIGNAL") else { return }
        let name = String(cString: v)
        let signo = csup_signal_number(name)
        guard signo > 0 else {
            writeToStandardError("ums: UMS_SNAPSHOT_SIGNAL=\(name) names no signal this runtime accepts (try USR1, USR2, QUIT or a number)\n")
            return
        }
        do { try install(signo) } catch {
            writeToStandardError("ums: UMS_SNAPSHOT_SIGNAL: \(error)\n")
        }
    }

    static func install(_ signo: Int32) throws(ConcRTError) {
        let fd = csup_signal_pipe_install(signo)
        guard fd >= 0 else {
            throw .diagnosticsUnavailable("cannot install a snapshot handler for signal \(signo): \(UMS.describe(errno: -fd))")
        }
        let first = readers.withLock { $0.insert(fd).inserted }
        guard first else { return }
        let t = try spawnPThread(stackSize: 512 * 1024) {
            var b: UInt8 = 0
            while true {
                let r = Glibc.read(fd, &b, 1)
                if r < 0 && errno == EINTR { continue }
                if r <= 0 { return }
                SnapshotSignal.dumpAll()
            }
        }
        pthread_detach(t)
    }

    /// Writes every live scheduler's snapshot to stderr.
    static func dumpAll() {
        let list = live.alive
        var text = "== ums snapshot on signal: \(list.count) scheduler(s) ==\n"
        for s in list { text += s.snapshot().description }
        writeToStandardError(text)
    }
}

extension Scheduler {
    /// Opts in to snapshots on demand: each time `signal` arrives, every
    /// live scheduler's snapshot is written to stderr by a helper thread
    /// (see `UMS_SNAPSHOT_SIGNAL` for the environment form). The signal's
    /// previous handler is replaced. [procdump /r]
    /// - Throws: ``ConcRTError/diagnosticsUnavailable(_:)`` for a signal that
    ///   cannot be caught, or when the pipe or thread cannot be made.
    public static func dumpSnapshotsOnSignal(_ signal: Int32) throws(ConcRTError) {
        try SnapshotSignal.install(signal)
    }
}
