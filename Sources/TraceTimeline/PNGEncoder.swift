/// Writes 8-bit RGB PNG files (PNG 1.2 / ISO 15948): the signature, IHDR,
/// one IDAT holding a zlib stream of the filtered scanlines (filter type 0
/// on every row), and IEND; each chunk with its CRC-32.
public enum PNGEncoder {
    /// The eight bytes every PNG file starts with.
    public static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    public enum EncodeError: Error, CustomStringConvertible {
        case badSize(width: Int, height: Int, bytes: Int)
        public var description: String {
            switch self {
            case let .badSize(w, h, n):
                return "PNG: \(w)x\(h) RGB needs \(w * h * 3) bytes of pixels, got \(n) (width and height must be positive)"
            }
        }
    }

    /// Encodes `rgb` (rows top to bottom, 3 bytes per pixel) as a PNG file.
    public static func encode(width: Int, height: Int, rgb: [UInt8],
                              compression: Deflate.Mode = .fixedHuffman) throws(EncodeError) -> [UInt8] {
        guard width > 0, height > 0, width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF,
              rgb.count == width * height * 3 else {
            throw .badSize(width: width, height: height, bytes: rgb.count)
        }
        var out = signature
        var ihdr: [UInt8] = []
        ihdr += be32(UInt32(width)); ihdr += be32(UInt32(height))
        ihdr += [8, 2, 0, 0, 0]   // bit depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
        chunk("IHDR", ihdr, into: &out)
        let stride = width * 3
        var raw: [UInt8] = []
        raw.reserveCapacity((stride + 1) * height)
        for y in 0..<height {
            raw.append(0)   // filter type None
            raw += rgb[(y * stride)..<((y + 1) * stride)]
        }
        chunk("IDAT", Deflate.zlib(raw, mode: compression), into: &out)
        chunk("IEND", [], into: &out)
        return out
    }

    static func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    /// Length, type, data, CRC-32 of type and data.
    static func chunk(_ type: String, _ data: [UInt8], into out: inout [UInt8]) {
        let t = Array(type.utf8)
        precondition(t.count == 4, "PNG chunk type must be 4 ASCII bytes: \(type)")
        out += be32(UInt32(data.count))
        out += t
        out += data
        out += be32(Checksums.crc32(data, continuing: Checksums.crc32(t)))
    }
}
