#if canImport(Glibc)
import Glibc
#endif

/// Python's string formatting as templates call it: `str.format` and `%`.
extension Builtins {
    /// Python's `str.format`: `{}`, `{0}`, `{name}`, with an optional `:.Nf` / `:d` spec.
    static func formatBraces(_ template: String, _ args: [Value], _ kwargs: [(String, Value)]) throws -> String {
        var out = "", next = 0
        var i = template.startIndex
        while i < template.endIndex {
            let ch = template[i]
            if ch == "{" || ch == "}" {
                let after = template.index(after: i)
                if after < template.endIndex, template[after] == ch { out.append(ch); i = template.index(after: after); continue }
                guard ch == "{", let close = template[i...].firstIndex(of: "}") else { throw TemplateError("single '\(ch)' in format string") }
                let field = template[after..<close]
                let (name, spec) = field.firstIndex(of: ":").map { (field[..<$0], String(field[field.index(after: $0)...])) } ?? (field, "")
                let value: Value
                if name.isEmpty {
                    guard next < args.count else { throw TemplateError("format: not enough arguments") }
                    value = args[next]; next += 1
                } else if let k = Int(name) {
                    guard k < args.count else { throw TemplateError("format: index \(k) out of range") }
                    value = args[k]
                } else {
                    guard let v = kwargs.first(where: { $0.0 == name })?.1 else { throw TemplateError("format: no argument '\(name)'") }
                    value = v
                }
                out += try formatSpec(value, spec)
                i = template.index(after: close)
                continue
            }
            out.append(ch)
            i = template.index(after: i)
        }
        return out
    }

    static func formatSpec(_ v: Value, _ spec: String) throws -> String {
        if spec.hasPrefix("."), spec.hasSuffix("f"), let digits = Int(spec.dropFirst().dropLast()) {
            let x: Double = { switch v { case .int(let i): return Double(i); case .double(let d): return d; default: return .nan } }()
            return fixed(x, digits)
        }
        return v.text
    }

    static func fixed(_ x: Double, _ digits: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([x]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Python's `%` formatting (the `format` filter): %s, %r, %d, %i, %f with an optional precision, %%.
    static func formatPercent(_ template: String, _ args: [Value]) throws -> String {
        var out = "", next = 0
        var chars = Array(template)[...]
        while let ch = chars.popFirst() {
            guard ch == "%" else { out.append(ch); continue }
            var precision: Int?
            if chars.first == "." {
                chars.removeFirst()
                var digits = ""
                while let d = chars.first, d.isNumber { digits.append(d); chars.removeFirst() }
                precision = Int(digits)
            }
            guard let conversion = chars.popFirst() else { throw TemplateError("incomplete format") }
            if conversion == "%" { out += "%"; continue }
            guard next < args.count else { throw TemplateError("not enough arguments for format string") }
            let v = args[next]; next += 1
            switch conversion {
            case "s": out += v.text
            case "r": out += v.repr()
            case "d", "i":
                switch v { case .int(let i): out += String(i); case .double(let d): out += String(Int(d)); case .bool(let b): out += b ? "1" : "0"
                default: throw TemplateError("%\(conversion) format: a number is required, not \(v.typeName)") }
            case "f":
                switch v { case .int(let i): out += fixed(Double(i), precision ?? 6); case .double(let d): out += fixed(d, precision ?? 6)
                default: throw TemplateError("%f format: a number is required, not \(v.typeName)") }
            default: throw TemplateError("unsupported format character '\(conversion)'")
            }
        }
        return out
    }
}
