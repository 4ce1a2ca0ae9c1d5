import CSupport
import Synchronization

/// Return addresses of a context or thread, innermost first, found by
/// walking frame pointers (CSupport/backtrace.c), and symbolized on demand
/// from the objects' ELF symbol tables, with Swift names demangled.
/// [no ConcRT equivalent: what a debugger's Parallel Stacks window shows]
public struct Backtrace: Sendable, Equatable, CustomStringConvertible {
    /// The addresses: return addresses, except the first one of a captured
    /// running thread, which is the interrupted instruction.
    public let addresses: [UInt]
    /// True when `addresses[0]` is an instruction rather than a return address.
    public let firstIsInstruction: Bool

    public init(addresses: [UInt], firstIsInstruction: Bool = false) {
        self.addresses = addresses
        self.firstIsInstruction = firstIsInstruction
    }

    /// One symbolized frame.
    public struct Frame: Sendable, Equatable, CustomStringConvertible {
        public let address: UInt
        /// The function's name, demangled for Swift, or nil when unknown.
        public let symbol: String?
        /// Bytes from the function's start.
        public let offset: UInt
        /// The object (executable or shared library) that holds it.
        public let image: String?

        public var description: String {
            let img = image.map { String($0.split(separator: "/").last ?? Substring($0)) } ?? "?"
            return "0x\(String(address, radix: 16)) \(symbol ?? "?") + \(offset) (\(img))"
        }
    }

    /// The frames, symbolized (cached per address: symbolizing reads each
    /// object's symbol table once).
    public var frames: [Frame] {
        addresses.enumerated().map { i, a in
            // A return address points after its call: look up the call.
            Self.symbolize(i == 0 && firstIsInstruction ? a : a &- 1, shownAs: a)
        }
    }

    /// The frames after the runtime's own leading ones (the switch, the
    /// wait primitive, the blocking-call wrapper): where user code waits.
    /// All frames when every one is the runtime's.
    public var userFrames: [Frame] {
        let all = frames
        let user = all.drop { f in f.symbol.map(Self.isRuntimeSymbol) ?? false }
        return user.isEmpty ? all : Array(user)
    }

    /// The first frame of the caller of the runtime: past the leading
    /// run of runtime frames (and the standard library's and thunks'
    /// frames among them). nil when every frame is the runtime's.
    var callSite: Frame? {
        frames.first { f in
            guard let s = f.symbol else { return true }
            return !(Self.isRuntimeSymbol(s) || s.hasPrefix("Swift.") || s.hasPrefix("reabstraction thunk")
                     || s.hasPrefix("partial apply") || s.hasPrefix("thunk for"))
        }
    }

    static func isRuntimeSymbol(_ s: String) -> Bool {
        if s.hasPrefix("csup_") || s == "do_switch" || s.hasPrefix("$s") { return true }
        // "closure #1 (…) -> … in closure #2 … in ConcRT.X": judge by what
        // it is in (the first " in " each time: the part after it may hold
        // a private discriminator, "(name in _HASH)").
        var rest = Substring(s)
        // "generic specialization <…> of UMS.X", "merged UMS.X",
        // "outlined copy of …": judge by what it specializes or belongs to.
        let wrappers: [(prefix: String, marker: String)] = [
            ("generic specialization", "> of "), ("function signature specialization", "> of "),
            ("partial apply forwarder for ", ""), ("merged ", ""), ("outlined ", " of "),
        ]
        let prefixes = ["closure", "implicit closure", "reabstraction thunk"]
        var changed = true
        while changed {
            changed = false
            for w in wrappers where rest.hasPrefix(w.prefix) {
                if w.marker.isEmpty {
                    rest = rest.dropFirst(w.prefix.count)
                } else if let r = Self.firstRange(of: w.marker, in: rest) {
                    rest = rest[r.upperBound...]
                } else {
                    continue
                }
                changed = true
            }
            if prefixes.contains(where: { rest.hasPrefix($0) }), let r = Self.firstRange(of: " in ", in: rest) {
                rest = rest[r.upperBound...]
                changed = true
            }
        }
        if rest.hasPrefix("static ") { rest = rest.dropFirst(7) }
        return rest.hasPrefix("ConcRT.") || rest.hasPrefix("UMS.")
    }

    /// The first occurrence of `needle` in `text` (no Foundation here).
    static func firstRange(of needle: String, in text: Substring) -> Range<Substring.Index>? {
        guard let first = needle.first else { return nil }
        var i = text.startIndex
        while i < text.endIndex {
            if text[i] == first, text[i...].hasPrefix(needle) {
                return i..<text.index(i, offsetBy: needle.count)
            }
            i = text.index(after: i)
        }
        return nil
    }

    public var description: String {
        frames.enumerated().map { "#\($0.offset) \($0.element)" }.joined(separator: "\n")
    }

    /// The caller's own backtrace (this function's frame excluded).
    @inline(never)
    public static func current(skip: Int = 0) -> Backtrace {
        // +1: csup_backtrace_here's caller is this function.
        Backtrace(addresses: capture { csup_backtrace_here($0, $1, Int32(skip + 1)) })
    }

    /// A suspended context's backtrace from its context record (see
    /// csup_ctx_backtrace: the record must stay alive; a stack that went
    /// away only ends the walk).
    static func ofSuspended(_ record: OpaquePointer) -> Backtrace {
        Backtrace(addresses: capture { csup_ctx_backtrace(record, $0, $1) })
    }

    /// Up to 64 addresses from one of CSupport's walks (`walk(buffer,
    /// capacity)` returns the count, or a negative errno: none).
    private static func capture(_ walk: (UnsafeMutablePointer<UInt>?, Int32) -> Int32) -> [UInt] {
        var buf = [UInt](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBufferPointer { b in Int(walk(b.baseAddress, Int32(b.count))) }
        return Array(buf.prefix(max(0, n)))
    }

    /// A running pthread's backtrace, taken by a signal (see
    /// csup_thread_backtrace), walking only within `stack` when given.
    /// nil when the thread did not answer in time.
    static func ofRunningThread(tid: Int64, stack record: OpaquePointer?, timeout: Duration) -> Backtrace? {
        var lo: UInt = 0, hi: UInt = 0
        if let record { csup_ctx_stack_bounds(record, &lo, &hi) }
        let frames = capture { csup_thread_backtrace(tid, lo, hi, $0, $1, timeout.saturatingNanoseconds) }
        guard !frames.isEmpty else { return nil }
        return Backtrace(addresses: frames, firstIsInstruction: true)
    }

    private static let cache = MigrationSafeMutex<[UInt: Frame]>([:])

    /// The UTF-8 text of a C buffer up to its first NUL (or its end).
    private static func string(fromNulTerminated buffer: [CChar]) -> String {
        let end = buffer.firstIndex(of: 0) ?? buffer.endIndex
        return String(decoding: buffer[..<end].lazy.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func symbolize(_ lookup: UInt, shownAs address: UInt) -> Frame {
        if let f = cache.withLock({ $0[address] }) { return f }
        var name = [CChar](repeating: 0, count: 1024)
        var image = [CChar](repeating: 0, count: 512)
        var offset: UInt = 0
        let found = csup_symbolize(lookup, &name, name.count, &offset, &image, image.count)
        let symbol: String? = found == 1 ? demangle(Self.string(fromNulTerminated: name)) : nil
        let imageName: String? = found >= 0 ? Self.string(fromNulTerminated: image) : nil
        let f = Frame(address: address, symbol: symbol, offset: found == 1 ? offset + (address - lookup) : 0,
                      image: imageName?.isEmpty == false ? imageName : nil)
        cache.withLock { c in
            if c.count > 100_000 { c.removeAll() }
            c[address] = f
        }
        return f
    }

    /// Demangles a Swift symbol ($s…, _$s…); other names are returned as is.
    static func demangle(_ mangled: String) -> String {
        guard mangled.hasPrefix("$s") || mangled.hasPrefix("_$s") || mangled.hasPrefix("$S") else { return mangled }
        return mangled.withCString { p in
            guard let out = _swiftDemangle(p, strlen(p), nil, nil, 0) else { return mangled }
            defer { free(out) }
            return String(cString: out)
        }
    }
}

/// libswiftCore's demangler (exported; returns a malloc'ed string or nil).
@_silgen_name("swift_demangle")
private func _swiftDemangle(_ mangled: UnsafePointer<CChar>?, _ length: Int, _ out: UnsafeMutablePointer<CChar>?,
                            _ outLength: UnsafeMutablePointer<Int>?, _ flags: UInt32) -> UnsafeMutablePointer<CChar>?

#if canImport(Glibc)
import Glibc
#endif
