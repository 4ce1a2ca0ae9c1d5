/// Which state each pixel column of a track shows, at one nesting depth.
///
/// Zoomed out, a column stands for more time than most spans last (2 s on
/// 1,600 columns: 1.25 ms a column, tasks of a few microseconds). Drawing
/// the spans one after another would show whichever came last in each
/// column; instead each column adds up how long each state covers it and
/// shows the state that covers it most. At depth 0 a column that any span
/// touches is drawn (a span shorter than a column still shows); a nested
/// span is drawn over its parent only where it covers at least half as
/// much of the column as the state shown at the depth above: zoomed out, a
/// row turns kernel-red where tasks spent half their time or more blocked,
/// not wherever one short call happened.
struct ColumnCoverage {
    let columns: Int
    private(set) var names: [String] = []
    private var nameIndex: [String: Int] = [:]
    /// `cover[column][state]`, in column units (1 = the whole column).
    private var cover: [[Double]]

    init(columns: Int) {
        precondition(columns > 0, "ColumnCoverage: no columns")
        self.columns = columns
        cover = Array(repeating: [], count: columns)
    }

    /// Adds a span given in fractional columns, `from <= to`; clipped to
    /// the columns. A zero-length span still marks its column.
    mutating func add(_ name: String, from: Double, to: Double) {
        let s: Int
        if let k = nameIndex[name] { s = k } else { s = names.count; nameIndex[name] = s; names.append(name) }
        let a = max(0, from), b = min(Double(columns), to)
        guard b >= a, a < Double(columns) else { return }
        let c0 = Int(a), c1 = min(columns - 1, Int(b))
        for c in c0...c1 {
            let amount = max(min(b, Double(c + 1)) - max(a, Double(c)), 1e-9)
            if cover[c].count <= s { cover[c] += Array(repeating: 0, count: s + 1 - cover[c].count) }
            cover[c][s] += amount
        }
    }

    /// The state covering most of column `c` and how much of it it covers
    /// (column units), if it covers at least `minimum`; else nil.
    func winner(_ c: Int, minimum: Double = 0) -> (name: String, cover: Double)? {
        var best = -1, bestAmount = 0.0
        for (s, v) in cover[c].enumerated() where v > bestAmount { best = s; bestAmount = v }
        return best < 0 || bestAmount < minimum ? nil : (names[best], bestAmount)
    }
}
