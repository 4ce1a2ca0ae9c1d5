import CSupport
import UMS

/// `switch`: two contexts ping-pong 10,000,000 times through the raw
/// context-switch primitive; ns per one-way switch.
///   - `ums-asm`: csup_asm_switch, the register switch (what Boost.Context's
///     jump_fcontext is);
///   - `ums-ucontext`: swapcontext through csup_ctx_switch;
///   - `ums-asm-runtime`: csup_ctx_switch with the asm backend, the full
///     switch the runtime makes (register switch + Swift exclusivity
///     hand-over + current-context slot).
enum SwitchBench {
    final class PingPong {
        var main: OpaquePointer?
        var other: OpaquePointer?
        /// Two saved-stack-pointer slots in C memory (not Swift properties:
        /// the raw switch does not hand over Swift's access set).
        let rawSlots = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 2)
        init() { rawSlots.initialize(repeating: nil, count: 2) }
        deinit { rawSlots.deallocate() }
        var remaining = 0
    }

    static func run(_ h: Harness) throws {
        let n = h.options.iterations ?? 10_000_000
        for backend in UMSContextBackend.allCases {
            let iters = backend == .ucontext ? n / 10 : n
            let ns = try h.median("switch \(backend)") { try pingPong(backend, iters) }
            if backend == .assembly {
                h.report("switch", "ums-asm-runtime", ns, "ns/switch", "(csup_ctx_switch: + exclusivity hand-over)")
            } else {
                h.report("switch", "ums-ucontext", ns, "ns/switch")
            }
        }
        let raw = try h.median("switch raw") { try rawPingPong(n) }
        h.report("switch", "ums-asm", raw, "ns/switch")
    }

    static func pingPong(_ backend: UMSContextBackend, _ iters: Int) throws -> Double {
        var stack = csup_stack()
        guard csup_stack_alloc(64 * 1024, &stack) == 0 else { throw BenchFailure(description: "stack alloc failed") }
        defer { csup_stack_free(&stack) }
        let pp = PingPong()
        pp.remaining = iters
        guard let m = csup_ctx_create_native() else { throw BenchFailure(description: "out of memory") }
        defer { csup_ctx_destroy(m) }
        var o: OpaquePointer?
        let arg = Unmanaged.passUnretained(pp).toOpaque()
        guard csup_ctx_create(&o, backend.cBackend, &stack, pingPongEntry, arg) == 0, let o else {
            throw BenchFailure(description: "context create failed")
        }
        defer { csup_ctx_destroy(o) }
        pp.main = m
        pp.other = o
        let ns = timeNs {
            // Each iteration: main -> other -> main (two one-way switches).
            for _ in 0..<iters { csup_ctx_switch(m, o) }
        }
        return ns / Double(2 * iters)
    }

    static func rawPingPong(_ iters: Int) throws -> Double {
        var stack = csup_stack()
        guard csup_stack_alloc(64 * 1024, &stack) == 0 else { throw BenchFailure(description: "stack alloc failed") }
        defer { csup_stack_free(&stack) }
        let pp = PingPong()
        let top = stack.lo! + stack.size
        let slots = pp.rawSlots
        slots[1] = csup_asm_make(top, rawEntry, slots)
        let ns = timeNs {
            for _ in 0..<iters { csup_asm_switch(slots, slots[1]) }
        }
        return ns / Double(2 * iters)
    }
}

extension UMSContextBackend {
    var cBackend: csup_backend { self == .assembly ? CSUP_BACKEND_ASM : CSUP_BACKEND_UCONTEXT }
}

/// The "other" context: switch back to main forever (never returns; the
/// context is destroyed while suspended).
private let pingPongEntry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    let pp = Unmanaged<SwitchBench.PingPong>.fromOpaque(arg!).takeUnretainedValue()
    let o = pp.other!, m = pp.main!
    while true { csup_ctx_switch(o, m) }
}

private let rawEntry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    let slots = arg!.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
    while true { csup_asm_switch(slots + 1, slots[0]) }
}
