import XCTest
import Agents

/// The README's Agents example, verbatim but for asserting what it prints.
final class ReadmeExampleTests: XCTestCase {
    final class Producer: Agent, @unchecked Sendable {
        let out: BoundedBuffer<Int>
        init(_ out: BoundedBuffer<Int>) { self.out = out; super.init() }
        override func run() { for i in 0..<2 { try! send(out, i) }; done() }
    }

    func testReadmeExample() throws {
        let raw = try BoundedBuffer<Int>(capacity: 64)
        let mapped = Transformer<Int, Int> { 2 * $0 + 1 }
        let ones = UnboundedBuffer<Int>(), threes = UnboundedBuffer<Int>()
        try raw.link(to: mapped)
        try mapped.link(to: ones, filter: { $0 % 4 == 1 })
        try mapped.link(to: threes)
        try send(raw, 20)
        XCTAssertEqual(try receive(ones, timeout: .seconds(1)), 41)
        let pair = try Join<Int>(inputs: 2, kind: .nonGreedy)
        try threes.link(to: pair.inputs[0])
        try ones.link(to: pair.inputs[1])
        let p = Producer(raw)
        p.start()
        XCTAssertEqual(try Agent.wait(p), .done)
        XCTAssertEqual(try receive(pair, timeout: .seconds(5)), [3, 1])
    }
}
