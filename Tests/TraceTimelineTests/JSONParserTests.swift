import Foundation
@testable import TraceTimeline
import XCTest

final class JSONParserTests: XCTestCase {
    private func parse(_ s: String) throws -> JSONValue { try JSONParser.parse(Array(s.utf8)) }
    private func failure(_ s: String) -> String {
        do { return "parsed \(try parse(s))" } catch { return "\(error)" }
    }

    func testValues() throws {
        XCTAssertEqual(try parse(#" {"a": [1, -2.5e2, 0.125, true, false, null, "x"], "b": {}} "#),
                       .object(["a": .array([.number(1), .number(-250), .number(0.125), .bool(true), .bool(false), .null, .string("x")]),
                                "b": .object([:])]))
        XCTAssertEqual(try parse(#""tab\tq\"s\\ \/ \u00e9 \ud83d\ude00""#), .string("tab\tq\"s\\ / é 😀"))
        XCTAssertEqual(try parse("[]"), .array([]))
        XCTAssertEqual(try parse("12345678901234567"), .number(12345678901234567))
        XCTAssertEqual(try parse("1.7976931348623157e308"), .number(.greatestFiniteMagnitude))
        XCTAssertEqual(JSONValue.number(7).text, "7")
        XCTAssertEqual(JSONValue.object(["k": .array([.number(1.5), .string("a\"b")])]).text, #"{"k":[1.5,"a\"b"]}"#)
    }

    func testErrorsNameThePlace() {
        XCTAssertEqual(failure("{\"a\": 1,\n  }"), "expected a string key in an object at line 2, column 3")
        XCTAssertEqual(failure("[1 2]"), "expected ',' or ']' in an array, found '2' at line 1, column 4")
        XCTAssertEqual(failure("[01]"), "leading zero in a number at line 1, column 2")
        XCTAssertEqual(failure("[1.]"), "digits expected after '.' at line 1, column 4")
        XCTAssertEqual(failure(#"["abc"#), "unterminated string at line 1, column 6")
        XCTAssertEqual(failure("[tru]"), "invalid literal, expected true at line 1, column 2")
        XCTAssertEqual(failure("{} x"), "unexpected 'x' after the JSON value at line 1, column 4")
        XCTAssertEqual(failure(""), "unexpected end of input, expected a value at line 1, column 1")
        XCTAssertEqual(failure(String(repeating: "[", count: 600)), "nesting deeper than 512 at line 1, column 513")
    }

    /// Every truncation of a trace throws; random byte changes throw or
    /// parse, never trap (bounded: one pass over the prefixes, 3,000 mutants;
    /// LONG=1: 30,000).
    func testTruncatedAndMutatedInputNeverTraps() throws {
        let full = Array(TimelineTests.sample.utf8)
        for n in 0..<full.count {
            // A prefix that ends inside the top-level value cannot parse.
            let prefix = Array(full[..<n])
            if (try? JSONParser.parse(prefix)) != nil {
                XCTFail("prefix of \(n) bytes parsed"); break
            }
        }
        let rounds = ProcessInfo.processInfo.environment["LONG"] == "1" ? 30_000 : 3_000
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array(#"{}[]":,.-+eE0123456789\u"tfn abc"#.utf8) + [0x00, 0x1F, 0xFF, 0xC3]
        var parsed = 0
        for _ in 0..<rounds {
            var m = full
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                m[Int.random(in: 0..<m.count, using: &rng)] = alphabet.randomElement(using: &rng)!
            }
            if let v = try? JSONParser.parse(m) {
                parsed += 1
                _ = try? Timeline(ChromeTrace.parse(bytes: m))
                _ = v.text
            }
        }
        XCTAssertLessThan(parsed, rounds, "every mutant parsed: the parser accepts anything")
    }

    /// Agrees with Foundation's parser on a generated trace.
    func testAgreesWithFoundation() throws {
        var parts: [String] = []
        for i in 0..<2000 {
            parts.append(#"{"ph":"B","name":"task","pid":1,"tid":\#(i % 4),"ts":\#(Double(i) * 1.25),"args":{"n":\#(i),"s":"v\#(i)"}}"#)
        }
        let text = "{\"traceEvents\":[" + parts.joined(separator: ",") + "]}"
        let ours = try parse(text)
        let theirs = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        guard case .object(let o) = ours, case .array(let evs)? = o["traceEvents"] else { return XCTFail("shape") }
        let fe = theirs["traceEvents"] as! [[String: Any]]
        XCTAssertEqual(evs.count, fe.count)
        for (a, b) in zip(evs, fe) {
            guard case .object(let e) = a, case .number(let ts)? = e["ts"], case .number(let tid)? = e["tid"] else { return XCTFail() }
            XCTAssertEqual(ts, (b["ts"] as! NSNumber).doubleValue)
            XCTAssertEqual(Int(tid), (b["tid"] as! NSNumber).intValue)
        }
    }

    /// A bounded large trace (LONG=1: ten times larger): parse and build
    /// stay linear (a copy-on-write slip once made this quadratic) and the
    /// counts come out exact.
    func testLargeTraceCountsAndTime() throws {
        let vps = 4
        let perVP = ProcessInfo.processInfo.environment["LONG"] == "1" ? 100_000 : 10_000
        var s = "{\"traceEvents\":["
        s.reserveCapacity(vps * perVP * 140)
        for v in 0..<vps {
            for k in 0..<perVP {
                let t = Double(k) * 10
                s += #"{"ph":"B","name":"task","pid":1,"tid":\#(v),"ts":\#(t)},"#
                s += #"{"ph":"E","name":"task","pid":1,"tid":\#(v),"ts":\#(t + 6)},"#
                if k % 10 == 0 { s += #"{"ph":"i","s":"t","name":"steal","pid":1,"tid":\#(v),"ts":\#(t + 7)},"# }
            }
        }
        s.removeLast()
        s += "]}"
        let t0 = Date()
        let tl = try Timeline(ChromeTrace.parse(Data(s.utf8)))
        let seconds = Date().timeIntervalSince(t0)
        XCTAssertEqual(tl.tracks.count, vps)
        for t in tl.tracks {
            XCTAssertEqual(t.spans.count, perVP)
            XCTAssertEqual(t.instants.count, perVP / 10)
            XCTAssertEqual(TrackSummary(t).states["task"]?.totalUs ?? 0, Double(perVP) * 6, accuracy: 1e-6)
        }
        // Debug build, shared 2-core machine: generous; the quadratic slip took minutes.
        XCTAssertLessThan(seconds, 30, "parsing and building \(vps * perVP * 2) events took \(seconds) s")
    }
}
