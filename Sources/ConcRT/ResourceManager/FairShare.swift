/// The Resource Manager's fair-share rule, as a pure function so that it
/// can be tested on its own (ResourceManager.swift uses it on its slow
/// paths only).
///
/// Units: a core is ``ResourceManager/unitsPerCore`` units, and a virtual
/// processor of a scheduler whose oversubscription factor is `f` costs
/// `unitsPerCore / f` units (so `f` VPs share one core).
///
/// The rule, for the schedulers that want cores now (each holds some, or has
/// a VP waiting for one):
/// 1. each gets its minimum (`minConcurrency` cores, rounded up to whole
///    VPs, never above what its VPs can use);
/// 2. what is left of the capacity is dealt out one VP at a time, round
///    robin in registration order, to every scheduler whose VPs can use
///    more, until nothing is left or nobody can use more.
///
/// Dealing whole VPs keeps every share a multiple of the scheduler's VP
/// cost, so a scheduler at its share never holds "half a core" and shares
/// do not flap. The remainder of an uneven split (3 cores, 2 schedulers)
/// goes to the earlier-registered scheduler, stably.
enum FairShare {
    struct Claim: Equatable {
        /// Guaranteed units (minConcurrency × unitsPerCore).
        var minimum: Int
        /// Units all its regular VPs together cost (it can use no more).
        var limit: Int
        /// Units one of its VPs costs.
        var cost: Int
        /// It wants cores now (holds some, or a VP waits for one).
        var active: Bool
    }

    /// Each claim's share, in units (0 for inactive claims).
    static func shares(capacity: Int, _ claims: [Claim]) -> [Int] {
        var share = [Int](repeating: 0, count: claims.count)
        var left = capacity
        for (i, c) in claims.enumerated() where c.active {
            precondition(c.cost > 0 && c.limit >= c.cost, "FairShare.shares: claim \(i) has cost \(c.cost), limit \(c.limit)")
            let wholeVPs = (c.minimum + c.cost - 1) / c.cost
            share[i] = min(wholeVPs * c.cost, c.limit - c.limit % c.cost)
            left -= share[i]
        }
        var dealt = true
        while dealt && left > 0 {
            dealt = false
            for (i, c) in claims.enumerated() where c.active && share[i] + c.cost <= c.limit && left >= c.cost {
                share[i] += c.cost
                left -= c.cost
                dealt = true
            }
        }
        return share
    }
}
