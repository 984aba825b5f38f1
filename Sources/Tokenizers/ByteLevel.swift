/// GPT-2's reversible byte ↔ character table: printable bytes stand for themselves, the rest are shifted to
/// U+0100 and up, so every byte sequence becomes a string of "visible" characters the BPE vocabulary is written in.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// The vocabulary spelling of raw bytes.
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }

    /// The raw bytes a vocabulary token stands for; nil if it contains a character outside the table.
    static func decode(_ token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s.value] else { return nil }
            bytes.append(b)
        }
        return bytes
    }
}
