/// Errors thrown by the Asynchronous Agents Library. [agents.h: the
/// exceptions and status codes its functions report]
public enum AgentsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `receive(timeout:)` ran out of time. [operation_timed_out]
    case timeout(Duration)
    /// A second value was sent to a ``SingleAssignment``. [single_assignment
    /// declines every message after the first]
    case alreadyAssigned
    /// A block was linked to itself (its messages would circle forever).
    /// [invalid_link_target]
    case selfLink
    /// The block was shut down: it accepts no more messages, and a receive
    /// finds it empty. [no agents.h equivalent: blocks there live until destroyed]
    case shutDown(String)
    /// An argument out of range (for example a join of no inputs).
    /// [std::invalid_argument]
    case invalidArgument(String)
    /// An agent operation in the wrong life-cycle state. [invalid_operation]
    case invalidState(String)

    public var description: String {
        switch self {
        case .timeout(let d): return "Agents: receive timed out after \(d)"
        case .alreadyAssigned: return "Agents: SingleAssignment already holds a value; a second assignment is refused"
        case .selfLink: return "Agents: a block cannot be linked to itself"
        case .shutDown(let what): return "Agents: \(what) has been shut down"
        case .invalidArgument(let s): return "Agents: invalid argument: \(s)"
        case .invalidState(let s): return "Agents: invalid state: \(s)"
        }
    }
}
