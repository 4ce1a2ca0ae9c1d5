import ConcRT
import Synchronization

/// How a parallel loop cuts its range into chunks. [partitioners]
public enum Partitioner: Sendable {
    /// Adaptive, as rayon's and TBB's: a loop is halved about once per
    /// virtual processor, and a range that another processor steals is
    /// halved again (the budget resets), so chunks follow demand: a loop
    /// nobody helps with costs a few forks, and a loop nested in a
    /// parallel tree does not fork per iteration. `parallelReduce` uses
    /// chunks of about n / (16 x virtual processors). [auto_partitioner]
    case auto
    /// One chunk per virtual processor. [static_partitioner]
    case `static`
    /// Chunks of exactly `chunk` iterations (the last may be shorter).
    /// [simple_partitioner]
    case simple(chunk: Int)
    /// Static chunks that are given, on the next loop with the same
    /// partitioner, to the virtual processors that ran them last time (for
    /// cache reuse across repeated loops over the same data).
    /// [affinity_partitioner]
    case affinity(AffinityPartitioner)
}

/// Remembers which virtual processor ran each chunk of a loop, for the
/// next loop over a range of the same size. [affinity_partitioner]
public final class AffinityPartitioner: @unchecked Sendable {
    // @unchecked Sendable: `lastVP` slots are atomics; the layout is set
    // under `lock`.
    private let lock = MigrationSafeMutex<Void>(())
    private(set) var chunkCount = 0
    private var count = -1
    private var lastVP: UnsafeMutablePointer<Atomic<Int>>?

    public init() {}

    deinit { lastVP?.deinitialize(count: chunkCount); lastVP?.deallocate() }

    /// Prepares the table for `n` iterations over `vps` processors; keeps
    /// the history when the shape is unchanged.
    func prepare(count n: Int, vps: Int) -> Int {
        lock.withLock { _ in
            let chunks = max(1, min(n, vps * 4))
            if n != count || chunks != chunkCount {
                lastVP?.deinitialize(count: chunkCount)
                lastVP?.deallocate()
                let p = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: chunks)
                for i in 0..<chunks { (p + i).initialize(to: Atomic(-1)) }
                lastVP = p
                chunkCount = chunks
                count = n
            }
            return chunkCount
        }
    }

    func owner(of chunk: Int) -> Int { lastVP![chunk].load(ordering: .relaxed) }
    func record(_ chunk: Int, vp: Int) { lastVP![chunk].store(vp, ordering: .relaxed) }

    /// Chunks whose last run was on another processor than this time
    /// (after the previous loop).
    public private(set) var lastMigrations = 0
    func setMigrations(_ n: Int) { lastMigrations = n }
}
