/// A small DEFLATE (RFC 1951) compressor and its zlib (RFC 1950) wrapper.
///
/// Two block kinds:
/// - `.stored`: uncompressed blocks of at most 65,535 bytes (trivially
///   correct; the reference a test can compare against);
/// - `.fixedHuffman`: LZ77 over a 32 KiB window (hash of the next three
///   bytes, chains of at most 32 candidates) coded with the fixed Huffman
///   codes of RFC 1951 §3.2.6. Timeline images are long runs of one colour
///   and rows equal to the row above, which this codes in a few bits per run.
public enum Deflate {
    public enum Mode: Sendable { case stored, fixedHuffman }

    /// A zlib stream: header (deflate, 32 KiB window), the blocks, Adler-32.
    public static func zlib(_ data: [UInt8], mode: Mode = .fixedHuffman) -> [UInt8] {
        // CMF 0x78 (deflate, 32 KiB window), FLG 0x01: (0x78 * 256 + 0x01) % 31 == 0.
        var out: [UInt8] = [0x78, 0x01]
        switch mode {
        case .stored: out += stored(data)
        case .fixedHuffman: out += fixedHuffman(data)
        }
        let a = Checksums.adler32(data)
        out += [UInt8(a >> 24), UInt8((a >> 16) & 0xFF), UInt8((a >> 8) & 0xFF), UInt8(a & 0xFF)]
        return out
    }

    /// Raw deflate as stored blocks.
    static func stored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + data.count / 65_535 * 5 + 5)
        var i = 0
        repeat {
            let n = min(65_535, data.count - i)
            let final: UInt8 = i + n == data.count ? 1 : 0
            out.append(final)   // BFINAL, BTYPE=00, then pad to the byte
            out += [UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[i..<(i + n)]
            i += n
        } while i < data.count
        return out
    }

    // MARK: fixed Huffman

    static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                     3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                  513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7,
                                   8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    /// Bits written least significant first, as DEFLATE packs them.
    struct BitWriter {
        var bytes: [UInt8] = []
        var acc: UInt64 = 0
        var n = 0
        mutating func write(_ value: Int, _ count: Int) {
            acc |= UInt64(value) << UInt64(n)
            n += count
            while n >= 8 { bytes.append(UInt8(acc & 0xFF)); acc >>= 8; n -= 8 }
        }
        /// A Huffman code: its bits go most significant first.
        mutating func writeCode(_ code: Int, _ count: Int) {
            var r = 0
            for i in 0..<count where code & (1 << i) != 0 { r |= 1 << (count - 1 - i) }
            write(r, count)
        }
        mutating func flush() { if n > 0 { bytes.append(UInt8(acc & 0xFF)); acc = 0; n = 0 } }
    }

    static func literal(_ v: Int, _ w: inout BitWriter) {
        switch v {
        case 0...143: w.writeCode(0x30 + v, 8)
        case 144...255: w.writeCode(0x190 + v - 144, 9)
        case 256...279: w.writeCode(v - 256, 7)
        default: w.writeCode(0xC0 + v - 280, 8)
        }
    }

    static func match(length: Int, distance: Int, _ w: inout BitWriter) {
        var li = lengthBase.count - 1
        while lengthBase[li] > length { li -= 1 }
        literal(257 + li, &w)
        if lengthExtra[li] > 0 { w.write(length - lengthBase[li], lengthExtra[li]) }
        var di = distBase.count - 1
        while distBase[di] > distance { di -= 1 }
        w.writeCode(di, 5)
        if distExtra[di] > 0 { w.write(distance - distBase[di], distExtra[di]) }
    }

    /// Raw deflate: one final block with the fixed codes.
    static func fixedHuffman(_ data: [UInt8]) -> [UInt8] {
        let window = 32_768, maxChain = 32, hashSize = 1 << 15
        var w = BitWriter()
        w.bytes.reserveCapacity(data.count / 8 + 64)
        w.write(1, 1)   // BFINAL
        w.write(1, 2)   // BTYPE = 01, fixed Huffman
        var head = [Int](repeating: -1, count: hashSize)
        var prev = [Int](repeating: -1, count: window)
        func hash(_ i: Int) -> Int {
            (Int(data[i]) << 10 ^ Int(data[i + 1]) << 5 ^ Int(data[i + 2])) & (hashSize - 1)
        }
        func insert(_ i: Int) {
            guard i + 2 < data.count else { return }
            let h = hash(i)
            prev[i & (window - 1)] = head[h]
            head[h] = i
        }
        var i = 0
        while i < data.count {
            var bestLen = 0, bestDist = 0
            if i + 2 < data.count {
                var cand = head[hash(i)]
                var chain = 0
                let maxLen = min(258, data.count - i)
                while cand >= 0 && i - cand <= window && chain < maxChain {
                    var l = 0
                    while l < maxLen && data[cand + l] == data[i + l] { l += 1 }
                    if l > bestLen { bestLen = l; bestDist = i - cand; if l == maxLen { break } }
                    let p = prev[cand & (window - 1)]
                    if p >= cand { break }   // slot reused by a newer position
                    cand = p
                    chain += 1
                }
            }
            if bestLen >= 3 {
                match(length: bestLen, distance: bestDist, &w)
                for k in i..<(i + bestLen) { insert(k) }
                i += bestLen
            } else {
                literal(Int(data[i]), &w)
                insert(i)
                i += 1
            }
        }
        literal(256, &w)   // end of block
        w.flush()
        return w.bytes
    }
}
