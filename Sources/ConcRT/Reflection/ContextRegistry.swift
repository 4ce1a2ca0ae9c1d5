import UMS

/// Every live context of a scheduler, for snapshots and the watchdog.
/// Added when a context's thread is adopted (Context.adopt), removed when
/// it ends (Scheduler.contextEnded). Unretained: a context in here is alive
/// (its thread holds it until contextEnded).
///
/// Striped: ``stripes`` dictionaries, each under its own lock, a context's
/// stripe fixed by its id, so contexts made and ended on different VPs
/// take different locks (no scheduler-wide lock on context creation and
/// exit). A lock publishes the context's fields set before its insertion
/// (`thread`) to a reader that finds it under the same lock.
final class ContextRegistry: @unchecked Sendable {
    // @unchecked Sendable: each dictionary is touched only under its lock.
    static let stripes = 64
    private final class Stripe: Sendable {
        let contexts = MigrationSafeMutex<[Int: Unmanaged<Context>]>([:])
    }
    private let shards: [Stripe] = (0..<ContextRegistry.stripes).map { _ in Stripe() }

    @inline(__always)
    private func shard(_ id: Int) -> Stripe { shards[Int(UInt(bitPattern: id) % UInt(Self.stripes))] }

    func insert(_ c: Context) { shard(c.id).contexts.withLock { $0[c.id] = Unmanaged.passUnretained(c) } }

    func remove(_ id: Int) { shard(id).contexts.withLock { _ = $0.removeValue(forKey: id) } }

    /// The live context with this id (strong: it stays readable).
    func lookup(_ id: Int) -> Context? { shard(id).contexts.withLock { $0[id]?.takeUnretainedValue() } }

    /// Every live context (strong references), one stripe at a time: a
    /// context made or ended during the walk may or may not be included.
    func all() -> [Context] {
        var out: [Context] = []
        for s in shards { s.contexts.withLock { r in out.append(contentsOf: r.values.map { $0.takeUnretainedValue() }) } }
        return out
    }
}
