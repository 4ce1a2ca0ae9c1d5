/// The two checksums a PNG file needs: CRC-32 (ISO 3309 / ITU-T V.42,
/// polynomial 0xEDB88320 reflected) over each chunk's type and data, and
/// Adler-32 (RFC 1950) over the uncompressed image data in the zlib stream.
public enum Checksums {
    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 of `bytes`, continuing from `crc` (pass the previous result to
    /// checksum data given in pieces; start from 0).
    public static func crc32<C: Collection>(_ bytes: C, continuing crc: UInt32 = 0) -> UInt32 where C.Element == UInt8 {
        var c = ~crc
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return ~c
    }

    /// Adler-32 of `bytes` (RFC 1950 §8.2).
    public static func adler32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        let mod: UInt32 = 65_521
        var a: UInt32 = 1, b: UInt32 = 0
        var n = 0
        for x in bytes {
            a &+= UInt32(x); b &+= a
            n += 1
            // 5552 is the largest run for which b cannot overflow 32 bits.
            if n == 5552 { a %= mod; b %= mod; n = 0 }
        }
        return ((b % mod) << 16) | (a % mod)
    }
}
