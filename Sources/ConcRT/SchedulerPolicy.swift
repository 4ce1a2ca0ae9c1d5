import CSupport
#if canImport(Glibc)
import Glibc
#endif
import UMS

/// How a scheduler is built. [SchedulerPolicy / PolicyElementKey]
///
/// | ConcRT key                     | here                              |
/// |--------------------------------|-----------------------------------|
/// | MinConcurrency / MaxConcurrency | ``minConcurrency`` / ``maxConcurrency`` |
/// | TargetOversubscriptionFactor   | ``targetOversubscriptionFactor``  |
/// | ContextStackSize               | ``contextStackSize`` (bytes; ConcRT uses KiB) |
/// | LocalContextCacheSize          | ``localContextCacheSize``         |
/// | SchedulingProtocol             | ``schedulingProtocol``            |
/// | (UMS vs thread scheduler kind) | ``contextBackend`` (how contexts switch) |
/// | (Windows: NUMA node / processor group affinity) | ``nodes``, ``processorGroups``, ``topologyRoot`` |
public struct SchedulerPolicy: Sendable, Equatable {
    /// Fewest cores the scheduler is guaranteed, and fewest virtual
    /// processors it starts (even on fewer CPUs). Default 1, as in ConcRT.
    ///
    /// The Resource Manager (``ResourceManager``) lets each scheduler's VPs
    /// run only while they hold a core: a scheduler always gets its
    /// `minConcurrency` cores when it has work (even when the minimums of
    /// all schedulers together exceed the machine: then, and only then, the
    /// machine is oversubscribed), and shares the rest with the other busy
    /// schedulers. So two schedulers with the default policy share the
    /// machine rather than each running a VP on every CPU.
    ///
    /// The rule, as in ConcRT: the scheduler starts
    /// ``virtualProcessorCount`` = `max(minConcurrency, min(maxConcurrency,
    /// availableConcurrency)) × targetOversubscriptionFactor` virtual
    /// processors. `maxConcurrency` is a cap, not a request: on a 2-CPU
    /// machine `SchedulerPolicy(maxConcurrency: 4)` gives 2. To get 4 there,
    /// ask for them: `SchedulerPolicy(minConcurrency: 4, maxConcurrency: 4)`.
    public var minConcurrency: Int
    /// Most virtual processors (a cap: see ``minConcurrency`` for the rule).
    /// Default: the CPUs this process may use (the sched_getaffinity mask,
    /// capped by a cgroup v2 `cpu.max` quota), or `minConcurrency` if larger.
    public var maxConcurrency: Int
    /// Virtual processors per CPU (1 = one pinned primary per CPU; above 1
    /// the primaries are not pinned).
    public var targetOversubscriptionFactor: Int
    /// Usable stack bytes of each context. Committed lazily.
    public var contextStackSize: Int
    /// Idle contexts each virtual processor keeps for reuse.
    public var localContextCacheSize: Int
    /// Which task a virtual processor picks next.
    public var schedulingProtocol: SchedulingProtocol
    /// Context-switch mechanism for the scheduler's contexts.
    public var contextBackend: UMSContextBackend
    /// Lazy kernel entry: a blocking call (``Blocking``, `UMS.blockingCall`)
    /// runs inline on its virtual processor's pthread, and when it is still
    /// in the call after this long while other work waits, and its thread
    /// did not keep its CPU busy over that window (a computing call is not
    /// blocked; it is left alone and looked at again), the UMS monitor
    /// retakes the virtual processor and another pthread carries it on
    /// (or, with ``retakeBlockedCalls`` false, compensates for it: a
    /// temporary virtual processor runs beside it). nil: every blocking call goes to a kernel thread at once (the
    /// Windows UMS shape: about 1.5 µs per call). Default 20 µs (Go's
    /// sysmon retakes after 20 µs to 10 ms).
    public var retakeAfter: Duration?
    /// What the monitor does with a wrapped call still blocked after
    /// ``retakeAfter`` while other work waits.
    /// - true (the default): retake (Windows UMS, Go's handoff of a P). The
    ///   virtual processor goes to a spare pthread at once; the blocked
    ///   thread's context comes back through its completion list when the
    ///   call returns, usually on another pthread.
    /// - false: compensate. A temporary virtual processor runs beside the
    ///   blocked one, as for an unwrapped block; the context keeps its
    ///   pthread and VP, and the temporary VP retires at the context's next
    ///   entry into the runtime, or when the monitor sees its thread
    ///   computing again. On blockmix's shape with a wrapped nanosleep this
    ///   takes 1.06x the ideal time with no context changing pthread;
    ///   retaking takes 1.6-1.8x, and 85% of the calls resume on another
    ///   pthread (`ums-bench pthread-changes`). Not yet the default: a
    ///   loopback echo test on 4 VPs hung once under ThreadSanitizer with it.
    /// Contexts in ``Context/withPinnedThread(_:)`` and Swift jobs are
    /// compensated for either way.
    public var retakeBlockedCalls: Bool
    /// Off by default: the UMS monitor also watches for a context blocked
    /// in a call made with no wrapper (plain `read(2)`,
    /// `pthread_mutex_lock`, C libraries): its thread stopped switching,
    /// its CPU clock stood still, and /proc says it sleeps in the kernel.
    /// While other work waits, the scheduler then runs a temporary virtual
    /// processor beside it (compensation: ``Context/oversubscribe(_:)``,
    /// started by the monitor), which retires once the context runs again.
    /// The context keeps its pthread and VP. Off by default because it
    /// runs more VPs than `maxConcurrency` while a call sleeps, and the
    /// monitor then looks at running threads (a thread CPU-clock read
    /// every 100 µs to 50 ms per VP).
    public var detectUnwrappedBlocking: Bool
    /// Syscall queues: a ``Blocking`` call that would block is queued on
    /// its virtual processor's io_uring and the context parks, with no
    /// kernel thread (see ``Scheduler/ioPath``). false: such calls take the
    /// lazy kernel-entry path. Default: true unless the environment sets
    /// `UMS_IO_URING=0`. Where io_uring is unavailable the lazy path
    /// serves either way.
    public var useIORing: Bool
    /// Watchdog: a virtual processor that stays in one task this long is
    /// reported once, with the task's label and backtrace (the cooperative
    /// trap made visible). nil: off. Default 100 ms (nil when the
    /// environment has `UMS_WATCHDOG=0`). See ``Watchdog``.
    public var longTaskReportAfter: Duration?
    /// Watchdog: a context that waits on one event or lock this long is
    /// reported once as a possible deadlock. nil: off. Default 10 s.
    public var longWaitReportAfter: Duration?
    /// Watchdog: a retake and an unwrapped blocking call are reported the
    /// first time they happen at each call site. Default true.
    public var reportRetakeSites: Bool
    /// NUMA nodes the virtual processors may run on (nil: all). VPs are
    /// spread over them and, when pinned, pinned there (see
    /// ``VirtualProcessorLayout``). An empty set or an unknown node is
    /// refused by ``validate()``.
    public var nodes: Set<Int>?
    /// Processor groups (64 CPUs at most each, see ``Topology``) the
    /// virtual processors may run on (nil: all). [GROUP_AFFINITY]
    public var processorGroups: Set<Int>?
    /// Where the topology is read from: nil for this machine, or a fixture
    /// directory mirroring `/sys` and `/proc/self` (see ``Topology``). With
    /// a fixture the VP count follows the fixture's CPUs and the layout is
    /// computed but not pinned. Default: `UMS_SYSFS_ROOT` from the
    /// environment, else nil.
    public var topologyRoot: String?

    /// `UMS_WATCHDOG=0` in the environment turns the watchdog's defaults
    /// off (no long-task, long-wait or retake-site reports; for example
    /// under valgrind, which does not take the capture signal well).
    public static var watchdogFromEnvironment: Bool {
        guard let v = getenv("UMS_WATCHDOG") else { return true }
        return String(cString: v) != "0"
    }

    /// `UMS_IO_URING=0` in the environment turns the ring off by default.
    public static var ioRingFromEnvironment: Bool {
        guard let v = getenv("UMS_IO_URING") else { return true }
        return String(cString: v) != "0"
    }

    public enum SchedulingProtocol: Sendable, Equatable {
        /// Stay with the schedule group last worked on (cache locality).
        case enhanceScheduleGroupLocality
        /// Round-robin across schedule groups after every task.
        case enhanceForwardProgress
    }

    /// Stack sizes below this are refused: Swift code with a few frames of
    /// recursion needs more than the UMS minimum.
    public static let minimumContextStackSize = 64 * 1024

    /// The CPUs this process may use: the affinity mask, capped by a cgroup
    /// v2 CPU quota (rounded up) when there is one.
    public static var availableConcurrency: Int {
        let affinity = Int(csup_affinity_count())
        let quota = Int(csup_cgroup_cpu_limit())
        return quota > 0 ? max(1, min(affinity, quota)) : affinity
    }

    public init(minConcurrency: Int? = nil, maxConcurrency: Int? = nil,
                targetOversubscriptionFactor: Int = 1,
                contextStackSize: Int = 256 * 1024,
                localContextCacheSize: Int = 8,
                schedulingProtocol: SchedulingProtocol = .enhanceScheduleGroupLocality,
                contextBackend: UMSContextBackend = .assembly,
                retakeAfter: Duration? = .microseconds(20),
                retakeBlockedCalls: Bool = true,
                detectUnwrappedBlocking: Bool = false,
                useIORing: Bool = SchedulerPolicy.ioRingFromEnvironment,
                longTaskReportAfter: Duration? = SchedulerPolicy.watchdogFromEnvironment ? .milliseconds(100) : nil,
                longWaitReportAfter: Duration? = SchedulerPolicy.watchdogFromEnvironment ? .seconds(10) : nil,
                reportRetakeSites: Bool = SchedulerPolicy.watchdogFromEnvironment,
                nodes: Set<Int>? = nil, processorGroups: Set<Int>? = nil,
                topologyRoot: String? = Topology.rootFromEnvironment) {
        self.nodes = nodes
        self.processorGroups = processorGroups
        self.topologyRoot = topologyRoot
        let n = Self.selectsTopology(nodes, processorGroups, topologyRoot)
            ? ((try? Self.selectionConcurrency(nodes, processorGroups, Topology.read(root: topologyRoot))) ?? Self.availableConcurrency)
            : Self.availableConcurrency
        self.maxConcurrency = maxConcurrency ?? max(n, minConcurrency ?? 1)
        self.minConcurrency = minConcurrency ?? 1
        self.targetOversubscriptionFactor = targetOversubscriptionFactor
        self.contextStackSize = contextStackSize
        self.localContextCacheSize = localContextCacheSize
        self.schedulingProtocol = schedulingProtocol
        self.contextBackend = contextBackend
        self.retakeAfter = retakeAfter
        self.retakeBlockedCalls = retakeBlockedCalls
        self.detectUnwrappedBlocking = detectUnwrappedBlocking
        self.useIORing = useIORing
        self.longTaskReportAfter = longTaskReportAfter
        self.longWaitReportAfter = longWaitReportAfter
        self.reportRetakeSites = reportRetakeSites
    }

    /// Throws ``ConcRTError/invalidPolicy(_:)`` naming the bad value.
    public func validate() throws(ConcRTError) {
        if maxConcurrency < 1 { throw .invalidPolicy("maxConcurrency must be >= 1 (got \(maxConcurrency))") }
        if minConcurrency < 1 { throw .invalidPolicy("minConcurrency must be >= 1 (got \(minConcurrency))") }
        if minConcurrency > maxConcurrency {
            throw .invalidPolicy("minConcurrency (\(minConcurrency)) exceeds maxConcurrency (\(maxConcurrency))")
        }
        if maxConcurrency > 1024 { throw .invalidPolicy("maxConcurrency must be <= 1024 (got \(maxConcurrency))") }
        if targetOversubscriptionFactor < 1 || targetOversubscriptionFactor > 64 {
            throw .invalidPolicy("targetOversubscriptionFactor must be in 1...64 (got \(targetOversubscriptionFactor))")
        }
        if contextStackSize < Self.minimumContextStackSize {
            throw .invalidPolicy("contextStackSize \(contextStackSize) is below the safe minimum \(Self.minimumContextStackSize)")
        }
        if contextStackSize > 1 << 32 { throw .invalidPolicy("contextStackSize \(contextStackSize) is too large") }
        if let r = retakeAfter, r < .microseconds(1) || r > .seconds(10) {
            throw .invalidPolicy("retakeAfter must be between 1 µs and 10 s, or nil (got \(r))")
        }
        if let d = longTaskReportAfter, d < .milliseconds(1) || d > .seconds(3600) {
            throw .invalidPolicy("longTaskReportAfter must be between 1 ms and 1 h, or nil (got \(d))")
        }
        if let d = longWaitReportAfter, d < .milliseconds(1) || d > .seconds(86400) {
            throw .invalidPolicy("longWaitReportAfter must be between 1 ms and 1 day, or nil (got \(d))")
        }
        if localContextCacheSize < 0 { throw .invalidPolicy("localContextCacheSize must be >= 0 (got \(localContextCacheSize))") }
        if Self.selectsTopology(nodes, processorGroups, topologyRoot) {
            _ = try topology().selectedCPUs(nodes: nodes, processorGroups: processorGroups)
        }
    }

    /// True when the policy names nodes, groups or a fixture root (else the
    /// live affinity and quota are enough, with no sysfs read).
    static func selectsTopology(_ nodes: Set<Int>?, _ groups: Set<Int>?, _ root: String?) -> Bool {
        nodes != nil || groups != nil || root != nil
    }

    /// The selected CPUs' count, capped by the quota.
    static func selectionConcurrency(_ nodes: Set<Int>?, _ groups: Set<Int>?, _ t: Topology) throws(ConcRTError) -> Int {
        t.cappedByQuota(try t.selectedCPUs(nodes: nodes, processorGroups: groups).count)
    }

    /// The topology this policy reads (``topologyRoot``, or this machine).
    /// On this machine, a sysfs that cannot be read gives one node of the
    /// affinity mask's CPUs.
    public func topology() throws(ConcRTError) -> Topology {
        if topologyRoot != nil { return try Topology.read(root: topologyRoot) }
        if let t = try? Topology.read(root: nil) { return t }
        let cpus = (0..<Int(csup_affinity_count())).map { Int(csup_affinity_cpu_at(Int32($0))) }
        return Topology(root: nil, cpus: cpus, nodes: [:], affinity: cpus, cpuset: nil, cpuQuota: nil)
    }

    /// ``virtualProcessorCount`` on a topology already read.
    func virtualProcessorCount(on t: Topology) -> Int {
        let available = Self.selectsTopology(nodes, processorGroups, topologyRoot)
            ? ((try? Self.selectionConcurrency(nodes, processorGroups, t)) ?? Self.availableConcurrency)
            : Self.availableConcurrency
        return min(1024, max(minConcurrency, min(maxConcurrency, available)) * targetOversubscriptionFactor)
    }

    /// Virtual processors a scheduler with this policy starts on this
    /// machine: `max(minConcurrency, min(maxConcurrency,
    /// availableConcurrency)) × targetOversubscriptionFactor`, at most 1024.
    /// With ``nodes``, ``processorGroups`` or ``topologyRoot`` set,
    /// availableConcurrency counts the selected CPUs of that topology
    /// (capped by its quota).
    public var virtualProcessorCount: Int {
        if Self.selectsTopology(nodes, processorGroups, topologyRoot), let t = try? topology() {
            return virtualProcessorCount(on: t)
        }
        let cpus = max(minConcurrency, min(maxConcurrency, Self.availableConcurrency))
        return min(1024, cpus * targetOversubscriptionFactor)
    }
}
