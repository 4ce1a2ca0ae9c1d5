// nqueens: nested task groups, and cancellation to stop a search early.
//
// Counts the ways to place N queens on an N x N board so that none attacks
// another. The board is searched row by row; a row's free columns are a
// bit mask (columns taken, and the two diagonals shifted one step per row).
//
// Count mode (default): every free column of the first `depth` rows gets a
// task in a TaskGroup of its own level, so the search tree is split into a
// tree of groups: a task for row r makes a group for row r+1 and waits for
// it (waiting helps run queued tasks, then blocks the context, never the
// CPU). Below `depth` the rest of the tree is counted serially. The count
// is checked against the known table.
//
// First mode (--first): the same tree of groups, but the first task to find
// a full placement records it and cancels a CancellationTokenSource that
// the outermost group was created with. Cancellation reaches every nested
// group (they are created inside its tasks), tasks not yet started are
// discarded, and running serial searches notice it through
// isTaskCancellationRequested() and return early.
//
// Run `nqueens --help` for the options.
//
// Output (count mode): `nqueens(N): solutions: COUNT ...`.
import ConcRT
import Foundation
import PPL
import Synchronization
import UMS

/// Known solution counts (OEIS A000170), index = board size.
let knownCounts: [Int] = [1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596,
                          2279184, 14772512, 95815104, 666090624]

/// A partial placement: queens on rows 0..<row. Bits set in `cols`, `left`
/// and `right` are squares of the next row that are attacked (by column,
/// or by a diagonal going left or right).
struct Board: Sendable {
    let n: Int
    var row = 0
    var cols = 0, left = 0, right = 0
    /// The column of the queen on each row so far (for printing).
    var placed: [Int] = []

    init(n: Int) { self.n = n }

    var all: Int { (1 << n) - 1 }
    var isComplete: Bool { row == n }
    /// Columns where the next queen can go.
    var free: Int { all & ~(cols | left | right) }

    /// The board with a queen on the next row, at the column of `bit`.
    func placing(_ bit: Int) -> Board {
        var b = self
        b.row += 1
        b.cols |= bit
        b.left = ((left | bit) << 1) & all
        b.right = (right | bit) >> 1
        b.placed.append(bit.trailingZeroBitCount)
        return b
    }
}

// MARK: Serial search (the leaves)

/// Counts completions of a placement by plain recursion over bit masks.
func serialCount(all: Int, cols: Int, left: Int, right: Int) -> Int {
    if cols == all { return 1 }
    var free = all & ~(cols | left | right)
    var count = 0
    while free != 0 {
        let bit = free & -free      // lowest free column
        free ^= bit
        count += serialCount(all: all, cols: cols | bit, left: ((left | bit) << 1) & all, right: (right | bit) >> 1)
    }
    return count
}

/// Depth-first search for one completion of `board`. Every 4096 nodes it
/// asks whether the enclosing groups were canceled, and gives up if so
/// (`nodes` goes negative, which unwinds the whole recursion).
/// Returns the columns of all n queens, or nil.
func serialFind(_ board: Board, nodes: inout Int) -> [Int]? {
    if board.isComplete { return board.placed }
    nodes += 1
    if nodes & 4095 == 0, isTaskCancellationRequested() { nodes = Int.min; return nil }
    var free = board.free
    while free != 0 {
        let bit = free & -free
        free ^= bit
        if let found = serialFind(board.placing(bit), nodes: &nodes) { return found }
        if nodes < 0 { return nil }
    }
    return nil
}

// MARK: Parallel search (a task group per level)

/// A counter shared by the tasks of one group. (An Atomic cannot be
/// captured by an escaping closure; a class holding one can.)
final class Counter: Sendable {
    let value = Atomic<Int>(0)
    func add(_ n: Int) { value.wrappingAdd(n, ordering: .relaxed) }
    var total: Int { value.load(ordering: .relaxed) }
}

/// Counts the solutions below `board`: a group with a task per free column,
/// each recursing one level deeper, down to `depth` levels.
func parallelCount(_ board: Board, depth: Int, tasks: Counter) throws -> Int {
    if depth == 0 || board.isComplete {
        return serialCount(all: board.all, cols: board.cols, left: board.left, right: board.right)
    }
    let sum = Counter()
    let group = TaskGroup()
    var free = board.free
    while free != 0 {
        let bit = free & -free
        free ^= bit
        let next = board.placing(bit)
        tasks.add(1)
        group.run { sum.add(try parallelCount(next, depth: depth - 1, tasks: tasks)) }
    }
    try group.wait()
    return sum.total
}

/// What the first-solution search shares between its tasks.
final class Search: Sendable {
    let source = CancellationTokenSource()
    let solution = MigrationSafeMutex<[Int]?>(nil)
    let scheduled = Counter(), started = Counter()

    /// Keeps the first solution reported and cancels everything else.
    func report(_ s: [Int]) {
        let first = solution.withLock { cur -> Bool in
            if cur != nil { return false }
            cur = s
            return true
        }
        if first { source.cancel() }
    }
}

/// Looks for one solution below `board` with a group per level. Only the
/// outermost group holds the token; nested groups are canceled with it
/// because they are created inside its tasks.
func parallelFind(_ board: Board, depth: Int, search: Search, token: CancellationToken = .none) throws {
    if depth == 0 || board.isComplete {
        var nodes = 0
        if let s = serialFind(board, nodes: &nodes) { search.report(s) }
        return
    }
    let group = TaskGroup(token: token)
    var free = board.free
    while free != 0 {
        let bit = free & -free
        free ^= bit
        let next = board.placing(bit)
        search.scheduled.add(1)
        group.run {
            search.started.add(1)
            try parallelFind(next, depth: depth - 1, search: search)
        }
    }
    try group.wait()
}

/// Independent check of a placement: one queen per row and column, and no
/// two on a diagonal.
func isValidSolution(_ columns: [Int], n: Int) -> Bool {
    guard columns.count == n, Set(columns).count == n, columns.allSatisfy({ (0..<n).contains($0) }) else { return false }
    for i in 0..<n {
        for j in (i + 1)..<n where abs(columns[i] - columns[j]) == j - i { return false }
    }
    return true
}

func milliseconds(_ d: Duration) -> String {
    String(format: "%.1f", Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15)
}
