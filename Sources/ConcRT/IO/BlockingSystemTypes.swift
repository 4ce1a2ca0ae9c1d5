import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// ``Blocking`` with swift-system's types: `FileDescriptor` in, `Errno`
/// out. Each forwards to the raw `Int32` form (same paths, same
/// semantics); keep the raw forms for descriptors a C library hands you.
extension BlockingError {
    /// The error as swift-system's `Errno`.
    public var code: Errno { Errno(rawValue: errno) }
}

extension Blocking {
    /// read(2) into `buffer`; 0 at end of file.
    public static func read(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer) throws(BlockingError) -> Int {
        try read(fd.rawValue, into: buffer)
    }

    /// write(2) from `buffer`; may be short.
    public static func write(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer) throws(BlockingError) -> Int {
        try write(fd.rawValue, from: buffer)
    }

    /// Writes all of `buffer`.
    public static func writeAll(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer) throws(BlockingError) {
        try writeAll(fd.rawValue, from: buffer)
    }

    /// pread(2) at `offset`.
    public static func pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, offset: Int64) throws(BlockingError) -> Int {
        try pread(fd.rawValue, into: buffer, offset: offset)
    }

    /// pwrite(2) at `offset`.
    public static func pwrite(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer, offset: Int64) throws(BlockingError) -> Int {
        try pwrite(fd.rawValue, from: buffer, offset: offset)
    }

    /// open(2) of `path` (O_CLOEXEC is added).
    public static func open(_ path: FilePath, _ mode: FileDescriptor.AccessMode,
                            options: FileDescriptor.OpenOptions = [],
                            permissions: FilePermissions? = nil) throws(BlockingError) -> FileDescriptor {
        let flags = mode.rawValue | options.rawValue
        let perms = mode_t(permissions?.rawValue ?? 0o644)
        return FileDescriptor(rawValue: try open(path.string, flags: flags, mode: perms))
    }

    /// close(2).
    public static func close(_ fd: FileDescriptor) throws(BlockingError) {
        try close(fd.rawValue)
    }

    /// fsync(2), or fdatasync(2) when `dataOnly`.
    public static func fsync(_ fd: FileDescriptor, dataOnly: Bool = false) throws(BlockingError) {
        try fsync(fd.rawValue, dataOnly: dataOnly)
    }

    /// recv(2); 0 when the peer closed.
    public static func recv(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0,
                            timeout: Duration? = nil) throws(BlockingError) -> Int {
        try recv(fd.rawValue, into: buffer, flags: flags, timeout: timeout)
    }

    /// send(2) (MSG_NOSIGNAL is added); may be short.
    public static func send(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer, flags: Int32 = 0,
                            timeout: Duration? = nil) throws(BlockingError) -> Int {
        try send(fd.rawValue, from: buffer, flags: flags, timeout: timeout)
    }

    /// Sends all of `buffer`.
    public static func sendAll(_ fd: FileDescriptor, from buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) throws(BlockingError) {
        try sendAll(fd.rawValue, from: buffer, timeout: timeout)
    }

    /// accept4(2) (SOCK_CLOEXEC is added).
    public static func accept(_ fd: FileDescriptor, flags: Int32 = 0, timeout: Duration? = nil) throws(BlockingError) -> FileDescriptor {
        FileDescriptor(rawValue: try accept(fd.rawValue, flags: flags, timeout: timeout))
    }

    /// connect(2) to `address` (a sockaddr of `length` bytes).
    public static func connect(_ fd: FileDescriptor, address: UnsafeRawPointer, length: UInt32) throws(BlockingError) {
        try connect(fd.rawValue, address: address, length: length)
    }
}
