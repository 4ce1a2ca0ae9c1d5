import CSupport
import ConcRT
#if canImport(Glibc)
import Glibc
#endif

// Descriptors for the Blocking and ring tests: pipes, socketpairs, and TCP
// on 127.0.0.1 (every listener binds the loopback address only).

func ioPipe() -> (r: Int32, w: Int32) {
    var fds: [Int32] = [-1, -1]
    let r = csup_sys_pipe(&fds, 0)
    precondition(r.value == 0, "pipe: errno \(r.err)")
    return (fds[0], fds[1])
}

func ioSocketPair() -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    let r = csup_sys_socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), &fds)
    precondition(r.value == 0, "socketpair: errno \(r.err)")
    return (fds[0], fds[1])
}

func ioLoopback(port: UInt16) -> sockaddr_in {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    a.sin_addr = in_addr(s_addr: UInt32(0x7f00_0001).bigEndian)
    return a
}

/// A TCP socket bound to 127.0.0.1 on a kernel-chosen port, listening
/// (or only bound, when `listening` is false).
func ioListener(listening: Bool = true) -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    precondition(fd >= 0)
    var a = ioLoopback(port: 0)
    let size = socklen_t(MemoryLayout<sockaddr_in>.size)
    let b = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
    precondition(b == 0, "bind: \(errno)")
    if listening { precondition(listen(fd, 256) == 0) }
    var len = size
    _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (fd, UInt16(bigEndian: a.sin_port))
}

/// A TCP socket connected (through Blocking.connect) to 127.0.0.1:port.
func ioConnect(port: UInt16) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    precondition(fd >= 0)
    let a = ioLoopback(port: port)
    do {
        try withUnsafeBytes(of: a) { raw in
            try Blocking.connect(fd, address: raw.baseAddress!, length: UInt32(MemoryLayout<sockaddr_in>.size))
        }
    } catch {
        _ = Glibc.close(fd)
        throw error
    }
    return fd
}

