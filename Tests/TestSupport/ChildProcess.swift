import Foundation

/// Re-runs this test binary, filtered to `test`, with `environment` added
/// and no Swift backtracer (a trap is all the parent needs, and under
/// ThreadSanitizer the backtracer's clone() from the signal handler fails a
/// TSan CHECK: exit 66, not the signal). Returns whether a signal ended the
/// child, its exit status or signal number, and its stderr. For tests whose
/// child performs a misuse that must trap.
public func runTestInChildProcess(_ test: String, environment: [String: String]) throws
    -> (signalled: Bool, status: Int32, stderr: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    p.arguments = [test]
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    env["SWIFT_BACKTRACE"] = "enable=no"
    p.environment = env
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let data = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationReason == .uncaughtSignal, p.terminationStatus, String(decoding: data, as: UTF8.self))
}
