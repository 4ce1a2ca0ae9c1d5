import Foundation
import UMS

/// Counts of process resources, for leak checks: pthreads of the process
/// (/proc/self/task), open descriptors (/proc/self/fd), and UMS context
/// stacks mapped (after the stack cache is trimmed).
public struct ResourceCounts: Equatable, Sendable, CustomStringConvertible {
    public var threads: Int
    public var fds: Int
    public var stacks: Int

    public init(threads: Int, fds: Int, stacks: Int) {
        self.threads = threads
        self.fds = fds
        self.stacks = stacks
    }

    /// Reads the counts now (trimming the stack cache first).
    ///
    /// - Throws: ``ResourceCountError`` when /proc cannot be read: a leak
    ///   check without the numbers must fail, not pass.
    public static func now() throws -> ResourceCounts {
        UMS.trimStackCache()
        return ResourceCounts(threads: try countEntries(in: "/proc/self/task"),
                              fds: try countEntries(in: "/proc/self/fd"),
                              stacks: UMS.statistics.stacksMapped)
    }

    /// Entries of a directory; throws ``ResourceCountError`` when it
    /// cannot be read (never a made-up count).
    public static func countEntries(in dir: String) throws -> Int {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: dir).count
        } catch {
            throw ResourceCountError(path: dir, underlying: "\(error)")
        }
    }

    public var description: String { "threads=\(threads) fds=\(fds) stacks=\(stacks)" }

    /// Nothing leaked relative to `baseline`: every count is at most the
    /// baseline's. Not `==`: resources that existed at the baseline may end
    /// meanwhile (a Foundation or Dispatch pthread, a stack of a UMS thread
    /// of an earlier test that terminated since), while a leak can only add.
    public func isWithin(_ baseline: ResourceCounts) -> Bool {
        threads <= baseline.threads && fds <= baseline.fds && stacks <= baseline.stacks
    }

    /// Waits (bounded) until the counts are back within `baseline`.
    /// Returns the last counts read, for the failure message.
    public static func settle(within baseline: ResourceCounts, timeout: Double = 10) throws -> (ok: Bool, last: ResourceCounts) {
        var last = try now()
        let ok = eventually(timeout: timeout) {
            if let c = try? now() { last = c }
            return last.isWithin(baseline)
        }
        return (ok, try now())
    }
}

/// /proc could not be read, so resources cannot be counted.
public struct ResourceCountError: Error, CustomStringConvertible {
    public let path: String
    public let underlying: String
    public var description: String { "ResourceCounts: cannot read \(path) (\(underlying)); the leak check cannot run" }
}
