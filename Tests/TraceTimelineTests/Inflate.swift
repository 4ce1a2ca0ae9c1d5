@testable import TraceTimeline

/// An independent reader for what the encoder writes, so the tests check
/// the bytes against the format, not against the encoder's own code:
/// zlib header and Adler-32, DEFLATE stored and fixed-Huffman blocks
/// (RFC 1951 §3.2.4, §3.2.6), written from the RFC's tables.
struct InflateError: Error, CustomStringConvertible { var description: String }

enum Inflate {
    struct Bits {
        let d: [UInt8]; var pos = 0; var bit = 0
        mutating func read(_ n: Int) throws -> Int {
            var v = 0
            for i in 0..<n {
                guard pos < d.count else { throw InflateError(description: "out of data") }
                v |= Int((d[pos] >> bit) & 1) << i
                bit += 1; if bit == 8 { bit = 0; pos += 1 }
            }
            return v
        }
        /// A Huffman code's bits, most significant first.
        mutating func readMSB(_ n: Int) throws -> Int {
            var v = 0
            for _ in 0..<n { v = (v << 1) | (try read(1)) }
            return v
        }
        mutating func align() { if bit != 0 { bit = 0; pos += 1 } }
    }

    /// Fixed literal/length code (RFC 1951 §3.2.6).
    static func fixedSymbol(_ b: inout Bits) throws -> Int {
        var code = try b.readMSB(7)
        if code <= 0b0010111 { return 256 + code }
        code = (code << 1) | (try b.read(1))
        if code >= 0b0011_0000 && code <= 0b1011_1111 { return code - 0b0011_0000 }
        if code >= 0b1100_0000 && code <= 0b1100_0111 { return 280 + code - 0b1100_0000 }
        code = (code << 1) | (try b.read(1))
        if code >= 0b1_1001_0000 && code <= 0b1_1111_1111 { return 144 + code - 0b1_1001_0000 }
        throw InflateError(description: "bad fixed code \(code)")
    }

    static let lbase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lext = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let dbase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
                        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let dext = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    /// Decompresses a zlib stream; checks its header and Adler-32.
    /// Returns the data and the block types seen.
    static func zlib(_ z: [UInt8]) throws -> (data: [UInt8], blockTypes: Set<Int>) {
        guard z.count >= 6 else { throw InflateError(description: "zlib stream too short") }
        guard z[0] & 0x0F == 8, (Int(z[0]) * 256 + Int(z[1])) % 31 == 0, z[1] & 0x20 == 0 else {
            throw InflateError(description: "bad zlib header \(z[0]) \(z[1])")
        }
        var b = Bits(d: Array(z[2..<(z.count - 4)]))
        var out: [UInt8] = []
        var types = Set<Int>()
        var final = 0
        repeat {
            final = try b.read(1)
            let type = try b.read(2)
            types.insert(type)
            switch type {
            case 0:
                b.align()
                guard b.pos + 4 <= b.d.count else { throw InflateError(description: "stored header cut") }
                let len = Int(b.d[b.pos]) | Int(b.d[b.pos + 1]) << 8
                let nlen = Int(b.d[b.pos + 2]) | Int(b.d[b.pos + 3]) << 8
                guard len == (~nlen & 0xFFFF) else { throw InflateError(description: "stored LEN/NLEN mismatch") }
                b.pos += 4
                guard b.pos + len <= b.d.count else { throw InflateError(description: "stored block cut") }
                out += b.d[b.pos..<(b.pos + len)]
                b.pos += len
            case 1:
                while true {
                    let sym = try fixedSymbol(&b)
                    if sym < 256 { out.append(UInt8(sym)); continue }
                    if sym == 256 { break }
                    let li = sym - 257
                    guard li < 29 else { throw InflateError(description: "bad length symbol \(sym)") }
                    let len = lbase[li] + (try b.read(lext[li]))
                    let di = try b.readMSB(5)
                    guard di < 30 else { throw InflateError(description: "bad distance symbol \(di)") }
                    let dist = dbase[di] + (try b.read(dext[di]))
                    guard dist <= out.count else { throw InflateError(description: "distance \(dist) before the start") }
                    for _ in 0..<len { out.append(out[out.count - dist]) }
                }
            default:
                throw InflateError(description: "block type \(type) not expected from this encoder")
            }
        } while final == 0
        let a = z[(z.count - 4)...].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        guard a == Checksums.adler32(out) else { throw InflateError(description: "Adler-32 mismatch") }
        return (out, types)
    }
}

/// The chunks of a PNG file, each CRC checked.
struct PNGFile {
    var chunks: [(type: String, data: [UInt8])] = []
    var width = 0, height = 0, bitDepth = 0, colorType = 0, compression = -1, filter = -1, interlace = -1

    init(_ f: [UInt8]) throws {
        guard Array(f.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
            throw InflateError(description: "bad PNG signature")
        }
        func be32(_ i: Int) -> Int { Int(f[i]) << 24 | Int(f[i + 1]) << 16 | Int(f[i + 2]) << 8 | Int(f[i + 3]) }
        var i = 8
        while i < f.count {
            guard i + 12 <= f.count else { throw InflateError(description: "chunk header cut at \(i)") }
            let n = be32(i)
            guard i + 12 + n <= f.count else { throw InflateError(description: "chunk body cut at \(i)") }
            let type = String(decoding: f[(i + 4)..<(i + 8)], as: UTF8.self)
            let data = Array(f[(i + 8)..<(i + 8 + n)])
            // CRC-32 by the bitwise definition (not the encoder's table).
            var c: UInt32 = 0xFFFF_FFFF
            for byte in f[(i + 4)..<(i + 8 + n)] {
                c ^= UInt32(byte)
                for _ in 0..<8 { c = (c & 1) == 1 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
            }
            guard UInt32(be32(i + 8 + n)) == ~c else { throw InflateError(description: "bad CRC on \(type)") }
            chunks.append((type, data))
            i += 12 + n
        }
        guard let h = chunks.first, h.type == "IHDR", h.data.count == 13 else { throw InflateError(description: "IHDR not first") }
        guard chunks.last?.type == "IEND" else { throw InflateError(description: "IEND not last") }
        let d = h.data
        width = Int(d[0]) << 24 | Int(d[1]) << 16 | Int(d[2]) << 8 | Int(d[3])
        height = Int(d[4]) << 24 | Int(d[5]) << 16 | Int(d[6]) << 8 | Int(d[7])
        bitDepth = Int(d[8]); colorType = Int(d[9]); compression = Int(d[10]); filter = Int(d[11]); interlace = Int(d[12])
    }

    var idat: [UInt8] { chunks.filter { $0.type == "IDAT" }.flatMap(\.data) }

    /// RGB pixels (filter type 0 rows only, which is what the encoder writes).
    func pixels() throws -> [UInt8] {
        let raw = try Inflate.zlib(idat).data
        let stride = width * 3 + 1
        guard raw.count == stride * height else { throw InflateError(description: "IDAT holds \(raw.count) bytes") }
        var out: [UInt8] = []
        for y in 0..<height {
            guard raw[y * stride] == 0 else { throw InflateError(description: "row \(y) filter \(raw[y * stride])") }
            out += raw[(y * stride + 1)..<((y + 1) * stride)]
        }
        return out
    }
}
