import CSupport
import UMS
#if canImport(Glibc)
import Glibc
#endif

/// Starts a joinable pthread running `body`. Throws the pthread_create
/// errno (nothing is leaked on failure).
func spawnPThread(stackSize: Int = 1 << 20, _ body: @escaping @Sendable () -> Void) throws(ConcRTError) -> pthread_t {
    final class Start { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setstacksize(&attr, stackSize)
    // Why this is sound: the retained Start is released by the new thread,
    // or right here when creation fails.
    let arg = Unmanaged.passRetained(Start(body)).toOpaque()
    var tid = pthread_t()
    let err = pthread_create(&tid, &attr, { raw in
        let start = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue()
        (start as! Start).body()
        return nil
    }, arg)
    if err != 0 {
        Unmanaged<Start>.fromOpaque(arg).release()
        throw .schedulerStartFailed("pthread_create: \(UMS.describe(errno: err))")
    }
    return tid
}
