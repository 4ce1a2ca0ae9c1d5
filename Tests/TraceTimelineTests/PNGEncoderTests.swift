import Foundation
@testable import TraceTimeline
import XCTest

final class PNGEncoderTests: XCTestCase {
    func testChecksumsKnownValues() {
        XCTAssertEqual(Checksums.crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(Checksums.crc32(Array("IEND".utf8)), 0xAE42_6082)
        XCTAssertEqual(Checksums.adler32(Array("Wikipedia".utf8)), 0x11E6_0398)
        XCTAssertEqual(Checksums.adler32([UInt8]()), 1)
        // Adler-32 over more than 5552 bytes of 0xFF (the modulo deferral).
        let big = [UInt8](repeating: 0xFF, count: 100_000)
        var a: UInt32 = 1, b: UInt32 = 0
        for x in big { a = (a + UInt32(x)) % 65_521; b = (b + a) % 65_521 }
        XCTAssertEqual(Checksums.adler32(big), b << 16 | a)
        // Continuing a CRC over pieces equals the CRC of the whole.
        let s = Array("hello, world".utf8)
        XCTAssertEqual(Checksums.crc32(s[6...], continuing: Checksums.crc32(s[..<6])), Checksums.crc32(s))
    }

    private func image(_ w: Int, _ h: Int) -> [UInt8] {
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            let i = (y * w + x) * 3
            px[i] = UInt8(x & 0xFF); px[i + 1] = UInt8(y & 0xFF); px[i + 2] = x < w / 2 ? 200 : UInt8((x * y) & 0xFF)
        } }
        return px
    }

    func testRoundTripBothModes() throws {
        for mode in [Deflate.Mode.stored, .fixedHuffman] {
            for (w, h) in [(1, 1), (7, 3), (300, 250)] {   // 300x250: more than one 64 KiB stored block
                let px = image(w, h)
                let file = try PNGEncoder.encode(width: w, height: h, rgb: px, compression: mode)
                let png = try PNGFile(file)
                XCTAssertEqual(png.chunks.map(\.type), ["IHDR", "IDAT", "IEND"])
                XCTAssertEqual([png.width, png.height, png.bitDepth, png.colorType, png.compression, png.filter, png.interlace],
                               [w, h, 8, 2, 0, 0, 0])
                let (raw, types) = try Inflate.zlib(png.idat)
                XCTAssertEqual(raw.count, w * h * 3 + h, "\(mode) \(w)x\(h)")
                XCTAssertEqual(types, mode == .stored ? [0] : [1])
                XCTAssertEqual(try png.pixels(), px, "\(mode) \(w)x\(h)")
            }
        }
    }

    func testFixedHuffmanCompressesRunsAndRoundTripsEdgeCases() throws {
        // Long runs (lengths up to 258, distance 3 and one row up).
        var r = Raster(width: 1000, height: 100, background: RGB(255, 255, 255))
        r.fill(x: 100, y: 10, width: 700, height: 50, RGB(46, 160, 67))
        let stored = r.png(compression: .stored), packed = r.png()
        XCTAssertLessThan(packed.count * 20, stored.count, "fixed Huffman: \(packed.count) bytes vs stored \(stored.count)")
        XCTAssertEqual(try PNGFile(packed).pixels(), r.pixels)
        // Every length 3...300 of a repeated byte, and random bytes.
        var data: [UInt8] = []
        for n in 3...300 { data += [UInt8](repeating: UInt8(n & 0xFF), count: n); data.append(0xAA) }
        var g = SystemRandomNumberGenerator()
        data += (0..<70_000).map { _ in UInt8.random(in: 0...3, using: &g) }   // matches at far distances
        XCTAssertEqual(try Inflate.zlib(Deflate.zlib(data)).data, data)
        XCTAssertEqual(try Inflate.zlib(Deflate.zlib([])).data, [])
        XCTAssertEqual(try Inflate.zlib(Deflate.zlib([], mode: .stored)).data, [])
    }

    func testBadSizeThrows() {
        XCTAssertThrowsError(try PNGEncoder.encode(width: 2, height: 2, rgb: [1, 2, 3])) { e in
            XCTAssertTrue("\(e)".contains("needs 12 bytes"), "\(e)")
        }
        XCTAssertThrowsError(try PNGEncoder.encode(width: 0, height: 2, rgb: []))
    }

    /// The same file checked by CPython's zlib, an implementation that
    /// shares nothing with this package (python3 is on the project's
    /// machines; the test fails, with the reason, if it is missing).
    func testPythonZlibReadsTheFile() throws {
        var r = Raster(width: 123, height: 45, background: Palette.background)
        r.fill(x: 10, y: 5, width: 50, height: 20, Palette.state("task"))
        BitmapFont.draw("VP 0", x: 2, y: 30, color: Palette.text, into: &r)
        let path = NSTemporaryDirectory() + "tt-\(getpid())-py.png"
        try Data(r.png()).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = """
        import struct, sys, zlib
        d = open(sys.argv[1], 'rb').read()
        assert d[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
        i, idat = 8, b''
        while i < len(d):
            n, = struct.unpack('>I', d[i:i+4]); t = d[i+4:i+8]; body = d[i+8:i+8+n]
            assert zlib.crc32(t + body) == struct.unpack('>I', d[i+8+n:i+12+n])[0], t
            if t == b'IHDR': w, h = struct.unpack('>II', body[:8])
            if t == b'IDAT': idat += body
            i += 12 + n
        raw = zlib.decompress(idat)
        assert len(raw) == w * h * 3 + h, len(raw)
        print(w, h, sum(raw))
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run(); p.waitUntilExit()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, "python3 rejected the PNG: \(e)")
        var sum = 0
        for y in 0..<45 { for x in 0..<123 { let c = r[x, y]; sum += Int(c.r) + Int(c.g) + Int(c.b) } }
        XCTAssertEqual(o.trimmingCharacters(in: .whitespacesAndNewlines), "123 45 \(sum)")
    }
}
