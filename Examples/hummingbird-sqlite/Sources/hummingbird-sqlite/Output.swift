#if canImport(Glibc)
import Glibc
#endif

/// Lines to standard output and standard error, written straight to the
/// descriptors (unbuffered: load.sh waits for the "listening" line through
/// a pipe, and C's `stdout`/`stderr` globals are not concurrency-safe in
/// Swift 6).
enum Output {
    static func say(_ line: String) { put(1, line + "\n") }
    static func warn(_ line: String) { put(2, "hummingbird-sqlite: " + line + "\n") }

    private static func put(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buf in
            var done = 0
            while done < buf.count {
                let n = write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 { if errno == EINTR { continue } else { return } }
                done += n
            }
        }
    }
}
