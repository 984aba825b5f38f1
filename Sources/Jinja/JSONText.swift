/// JSON in and out with object key order kept: contexts are parsed into `Value`s as written, and `tojson` prints
/// like Python's `json.dumps(x, ensure_ascii=False)` (", " and ": " separators; with indent, "," and ": ").
public enum JSONText {
    /// Python's json.dumps options as the `tojson` filter passes them.
    public struct Options: Sendable {
        public var indent: Int?
        /// `separators`: between items and between a key and its value (Python's default: ", " or "," with an
        /// indent, and ": ").
        public var itemSeparator: String?, keySeparator = ": "
        public var sortKeys = false, ensureASCII = false
        public init(indent: Int? = nil) { self.indent = indent }
    }

    /// Throws for what Python cannot serialize (Undefined).
    public static func encode(_ v: Value, _ options: Options) throws -> String {
        var out = ""
        try write(v, options, level: 0, into: &out)
        return out
    }

    private static func write(_ v: Value, _ options: Options, level: Int, into out: inout String) throws {
        let indent = options.indent
        let newline = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) }
        let closing = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
        let comma = options.itemSeparator ?? (indent == nil ? ", " : ",")
        switch v {
        case .undefined: throw TemplateError("Object of type Undefined is not JSON serializable")
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? Value.pythonFloat(d) : (d.isNaN ? "NaN" : d > 0 ? "Infinity" : "-Infinity")
        case .string(let s): writeString(s, ascii: options.ensureASCII, into: &out)
        case .array(let a, _):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (i, item) in a.enumerated() {
                if i > 0 { out += comma }
                if let newline { out += newline }
                try write(item, options, level: level + 1, into: &out)
            }
            out += closing + "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{"
            // Python sorts str keys by code point.
            let entries = options.sortKeys ? o.sorted { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) } : o
            for (i, (k, item)) in entries.enumerated() {
                if i > 0 { out += comma }
                if let newline { out += newline }
                writeString(k, ascii: options.ensureASCII, into: &out)
                out += options.keySeparator
                try write(item, options, level: level + 1, into: &out)
            }
            out += closing + "}"
        case .namespace, .macro, .builtin: out += "null"
        }
    }

    private static func writeString(_ s: String, ascii: Bool = false, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                func escaped(_ unit: UInt32) -> String {
                    let hex = String(unit, radix: 16)
                    return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
                if scalar.value < 0x20 {
                    out += escaped(scalar.value)
                } else if ascii && scalar.value > 0x7e {  // ensure_ascii: UTF-16 units, surrogate pairs above U+FFFF
                    for unit in String(scalar).utf16 { out += escaped(UInt32(unit)) }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    /// Parses JSON text into a `Value`, keeping object key order; integers stay integers.
    public static func parse(_ text: String) throws -> Value {
        var parser = Parser(bytes: Array(text.utf8))
        parser.skipSpace()
        let value = try parser.value()
        parser.skipSpace()
        guard parser.i == parser.bytes.count else { throw TemplateError("trailing characters in JSON at \(parser.i)") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 }
        }

        mutating func value() throws -> Value {
            guard i < bytes.count else { throw TemplateError("unexpected end of JSON") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                i += 1
                var pairs: [(String, Value)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(pairs) }
                while true {
                    skipSpace()
                    guard case .string(let key) = try value() else { throw TemplateError("JSON object key must be a string") }
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    pairs.append((key, try value()))
                    skipSpace()
                    if try endOr(",", "}") { return .object(pairs) }
                }
            case UInt8(ascii: "["):
                i += 1
                var items: [Value] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value())
                    skipSpace()
                    if try endOr(",", "]") { return .array(items) }
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .none
            default: return try number()
            }
        }

        mutating func expect(_ c: Character) throws {
            guard i < bytes.count, bytes[i] == c.asciiValue! else { throw TemplateError("expected '\(c)' in JSON at \(i)") }
            i += 1
        }

        /// Consumes a separator (false) or the closing bracket (true).
        mutating func endOr(_ separator: Character, _ close: Character) throws -> Bool {
            guard i < bytes.count else { throw TemplateError("unexpected end of JSON") }
            if bytes[i] == separator.asciiValue! { i += 1; return false }
            try expect(close)
            return true
        }

        mutating func literal(_ word: String) throws {
            let w = Array(word.utf8)
            guard i + w.count <= bytes.count, Array(bytes[i..<i + w.count]) == w else { throw TemplateError("bad JSON literal at \(i)") }
            i += w.count
        }

        mutating func number() throws -> Value {
            let start = i
            var isDouble = false
            while i < bytes.count, let c = Optional(bytes[i]),
                  (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") { isDouble = true }
                i += 1
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if !isDouble, let n = Int(text) { return .int(n) }
            guard let d = Double(text) else { throw TemplateError("bad JSON number '\(text)'") }
            return .double(d)
        }

        mutating func string() throws -> String {
            i += 1
            var out = [UInt8]()
            while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
                if bytes[i] == UInt8(ascii: "\\") {
                    i += 1
                    guard i < bytes.count else { break }
                    switch bytes[i] {
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code), i + 2 < bytes.count, bytes[i + 1] == UInt8(ascii: "\\"), bytes[i + 2] == UInt8(ascii: "u") {
                            i += 2
                            let low = try hex4()
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        out += Array(String(Unicode.Scalar(code) ?? "\u{FFFD}").utf8)
                    default: out.append(bytes[i])
                    }
                    i += 1
                } else {
                    out.append(bytes[i])
                    i += 1
                }
            }
            try expect("\"")
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 < bytes.count, let v = UInt32(String(decoding: bytes[i + 1...i + 4], as: UTF8.self), radix: 16) else {
                throw TemplateError("bad \\u escape in JSON")
            }
            i += 4
            return v
        }
    }
}
