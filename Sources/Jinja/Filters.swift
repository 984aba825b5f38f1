#if canImport(Glibc)
import Glibc
#endif
extension Builtins {
    static func filter(_ name: String, _ v: Value, _ args: [Value], _ kwargs: [(String, Value)],
                       interpreter: inout Interpreter) throws -> Value {
        func kw(_ key: String, _ position: Int) -> Value? {
            kwargs.first { $0.0 == key }?.1 ?? (position < args.count ? args[position] : nil)
        }
        switch name {
        case "trim": return .string(v.text.trimmingWhitespace)
        case "upper": return .string(v.text.uppercased())
        case "lower": return .string(v.text.lowercased())
        case "title": return .string(titleCase(v.text))
        case "capitalize": return .string(v.text.prefix(1).uppercased() + v.text.dropFirst().lowercased())
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.count)
            case .array(let a): return .int(a.count)
            case .object(let o): return .int(o.count)
            case .undefined: return .int(0)
            default: throw TemplateError("object of type '\(v.typeName)' has no len()")
            }
        case "first": return try interpreter.iterate(v).first ?? .undefined
        case "last": return try interpreter.iterate(v).last ?? .undefined
        case "join":
            let sep = kw("d", 0)?.text ?? ""
            var items = try interpreter.iterate(v)
            if let attr = kw("attribute", 1)?.text { items = items.map { $0[attr] } }
            return .string(items.map(\.text).joined(separator: sep))
        case "default", "d":
            let fallback = kw("default_value", 0) ?? .string("")
            let boolean = kw("boolean", 1)?.isTruthy ?? false
            if case .undefined = v { return fallback }
            return boolean && !v.isTruthy ? fallback : v
        case "tojson":
            let indent: Int? = { if case .int(let i)? = kw("indent", 0) { return i }; return nil }()
            return .string(JSONText.encode(v, indent: indent))
        case "replace":
            guard args.count >= 2 else { throw TemplateError("replace needs two arguments") }
            return .string(v.text.replacingAll(args[0].text, with: args[1].text))
        case "string": return .string(v.text)
        case "int":
            switch v {
            case .int: return v
            case .double(let d): return .int(Int(d))
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s): return .int(Int(s.trimmingWhitespace) ?? Int(Double(s.trimmingWhitespace) ?? 0))
            default: return .int(0)
            }
        case "float":
            switch v {
            case .int(let i): return .double(Double(i))
            case .double: return v
            case .string(let s): return .double(Double(s.trimmingWhitespace) ?? 0)
            default: return .double(0)
            }
        case "list": return .array(try interpreter.iterate(v))
        case "items":
            guard case .object(let o) = v else { return .array([]) }
            return .array(o.map { .array([.string($0.0), $0.1]) })
        case "selectattr", "rejectattr":
            guard let attr = args.first?.text else { throw TemplateError("\(name) needs an attribute") }
            let keep = name == "selectattr"
            return .array(try interpreter.iterate(v).filter { item in
                let value = item[attr]
                let passed = args.count > 1 ? try test(args[1].text, value, Array(args.dropFirst(2))) : value.isTruthy
                return passed == keep
            })
        case "select", "reject":
            let keep = name == "select"
            return .array(try interpreter.iterate(v).filter { item in
                let passed = args.isEmpty ? item.isTruthy : try test(args[0].text, item, Array(args.dropFirst()))
                return passed == keep
            })
        case "map":
            let items = try interpreter.iterate(v)
            if let attr = kwargs.first(where: { $0.0 == "attribute" })?.1.text {
                let fallback = kwargs.first { $0.0 == "default" }?.1
                return .array(items.map { item in
                    let value = item[attr]
                    if case .undefined = value, let fallback { return fallback }
                    return value
                })
            }
            guard let filterName = args.first?.text else { return .array(items) }
            return .array(try items.map { try filter(filterName, $0, Array(args.dropFirst()), [], interpreter: &interpreter) })
        case "reverse":
            if case .string(let s) = v { return .string(String(s.reversed())) }
            return .array(try interpreter.iterate(v).reversed())
        case "sort":
            let reverse = kw("reverse", 0)?.isTruthy ?? false
            let attr = kwargs.first { $0.0 == "attribute" }?.1.text
            var failure: (any Error)?
            let sorted = try interpreter.iterate(v).sorted { a, b in
                do {
                    let (x, y) = attr.map { (a[$0], b[$0]) } ?? (a, b)
                    return try compare(x, y) < 0
                } catch {
                    failure = error
                    return false
                }
            }
            if let failure { throw failure }
            return .array(reverse ? sorted.reversed() : sorted)
        case "unique":
            var seen: [Value] = []
            for item in try interpreter.iterate(v) where !seen.contains(item) { seen.append(item) }
            return .array(seen)
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            default: throw TemplateError("bad operand type for abs(): '\(v.typeName)'")
            }
        case "round":
            let precision: Int = { if case .int(let p)? = kw("precision", 0) { return p }; return 0 }()
            guard case let x? = { () -> Double? in
                switch v { case .int(let i): return Double(i); case .double(let d): return d; default: return nil }
            }() else { throw TemplateError("round needs a number") }
            var scale = 1.0
            for _ in 0..<max(0, precision) { scale *= 10 }
            return .double((x * scale).rounded(.toNearestOrEven) / scale)
        case "safe": return v
        case "dictsort":
            guard case .object(let o) = v else { return .array([]) }
            return .array(o.sorted { $0.0.lowercased() < $1.0.lowercased() }.map { .array([.string($0.0), $0.1]) })
        case "indent":
            let width: Int = { if case .int(let w)? = kw("width", 0) { return w }; return 4 }()
            let first = kw("first", 1)?.isTruthy ?? false
            let pad = String(repeating: " ", count: width)
            let lines = v.text.split(separator: "\n", omittingEmptySubsequences: false)
            return .string(lines.enumerated().map { i, line in
                (i == 0 && !first) || line.isEmpty ? String(line) : pad + line
            }.joined(separator: "\n"))
        case "sum":
            var items = try interpreter.iterate(v)
            if let attr = kw("attribute", 0)?.text, !attr.isEmpty, kwargs.contains(where: { $0.0 == "attribute" }) { items = items.map { $0[attr] } }
            return try items.reduce(kwargs.first { $0.0 == "start" }?.1 ?? .int(0)) { try binary("+", $0, $1) }
        case "min", "max":
            let items = try interpreter.iterate(v)
            guard var best = items.first else { return .undefined }
            let caseSensitive = kw("case_sensitive", 0)?.isTruthy ?? false
            func key(_ x: Value) -> Value { if !caseSensitive, case .string(let s) = x { return .string(s.lowercased()) }; return x }
            for x in items.dropFirst() {
                let c = try compare(key(x), key(best))
                if name == "min" ? c < 0 : c > 0 { best = x }
            }
            return best
        case "escape", "e":
            var out = ""
            for ch in v.text {
                switch ch {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.append(ch)
                }
            }
            return .string(out)
        case "wordcount":
            return .int(v.text.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).count)
        case "center":
            let width: Int = { if case .int(let w)? = kw("width", 0) { return w }; return 80 }()
            let s = v.text, margin = width - s.count
            guard margin > 0 else { return .string(s) }
            let left = margin / 2 + (margin & width & 1)  // CPython's str.center
            return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: margin - left))
        case "truncate":
            let s = v.text
            let length: Int = { if case .int(let n)? = kw("length", 0) { return n }; return 255 }()
            let killwords = kw("killwords", 1)?.isTruthy ?? false
            let end = kw("end", 2)?.text ?? "..."
            let leeway: Int = { if case .int(let n)? = kw("leeway", 3) { return n }; return 5 }()
            guard s.count > length + leeway else { return .string(s) }
            let cut = String(s.prefix(max(0, length - end.count)))
            if killwords { return .string(cut + end) }
            let words = cut.components(separatedByString: " ")
            return .string((words.count > 1 ? words.dropLast().joined(separator: " ") : cut) + end)
        case "batch":
            guard case .int(let size)? = kw("linecount", 0), size > 0 else { throw TemplateError("batch() needs a positive size") }
            let items = try interpreter.iterate(v), fill = kw("fill_with", 1)
            var out: [Value] = []
            for start in stride(from: 0, to: items.count, by: size) {
                var row = Array(items[start..<min(items.count, start + size)])
                if let fill, row.count < size { row += Array(repeating: fill, count: size - row.count) }
                out.append(.array(row))
            }
            return .array(out)
        case "format": return .string(try formatPercent(v.text, args))
        default: throw TemplateError("no filter named '\(name)'")
        }
    }

    /// String and dict methods chat templates call; nil when `name` is not one (then it may be a macro).
    static func method(_ receiver: Value, _ name: String, _ args: [Value], _ kwargs: [(String, Value)] = []) throws -> Value? {
        switch receiver {
        case .string(let s):
            switch name {
            case "strip": return .string(args.isEmpty ? s.trimmingWhitespace : s.trimming(args[0].text, leading: true, trailing: true))
            case "lstrip": return .string(args.isEmpty ? String(s.drop { $0.isWhitespace }) : s.trimming(args[0].text, leading: true, trailing: false))
            case "rstrip": return .string(args.isEmpty ? String(s.reversed().drop { $0.isWhitespace }.reversed()) : s.trimming(args[0].text, leading: false, trailing: true))
            case "upper": return .string(s.uppercased())
            case "lower": return .string(s.lowercased())
            case "title": return .string(titleCase(s))
            case "capitalize": return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
            case "startswith": return .bool(args.contains { s.hasPrefix($0.text) })
            case "endswith": return .bool(args.contains { s.hasSuffix($0.text) })
            case "replace": return .string(s.replacingAll(args[0].text, with: args.count > 1 ? args[1].text : ""))
            case "split", "rsplit":
                let limit: Int? = { if args.count > 1, case .int(let n) = args[1], n >= 0 { return n }; return nil }()
                if let sep = args.first, case .string(let separator) = sep {
                    var parts = s.components(separatedByString: separator)
                    if let limit, parts.count > limit + 1 {  // at most `limit` cuts, from the left (split) or right (rsplit)
                        parts = name == "split"
                            ? Array(parts.prefix(limit)) + [parts.dropFirst(limit).joined(separator: separator)]
                            : [parts.dropLast(limit).joined(separator: separator)] + Array(parts.suffix(limit))
                    }
                    return .array(parts.map { .string($0) })
                }
                return .array(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
            case "swapcase":
                return .string(String(s.map { $0.isUppercase ? Character($0.lowercased()) : $0.isLowercase ? Character($0.uppercased()) : $0 }))
            case "index", "rfind", "rindex":
                let needle = args.first?.text ?? ""
                let positions = s.indices.filter { s[$0...].hasPrefix(needle) }.map { s.distance(from: s.startIndex, to: $0) }
                guard let at = name == "index" ? positions.first : positions.last else {
                    if name == "rfind" { return .int(-1) }
                    throw TemplateError("substring not found")
                }
                return .int(at)
            case "join":
                guard case .array(let items)? = args.first else { throw TemplateError("join() needs a list") }
                return .string(items.map(\.text).joined(separator: s))
            case "isdigit": return .bool(!s.isEmpty && s.allSatisfy { $0.isNumber && $0.isASCII || $0.isWholeNumber })
            case "isalpha": return .bool(!s.isEmpty && s.allSatisfy(\.isLetter))
            case "isalnum": return .bool(!s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber })
            case "isspace": return .bool(!s.isEmpty && s.allSatisfy(\.isWhitespace))
            case "islower": return .bool(s.contains { $0.isCased } && !s.contains(where: \.isUppercase))
            case "isupper": return .bool(s.contains { $0.isCased } && !s.contains(where: \.isLowercase))
            case "zfill":
                guard case .int(let width)? = args.first, width > s.count else { return .string(s) }
                let sign = s.first == "-" || s.first == "+" ? String(s.first!) : ""
                return .string(sign + String(repeating: "0", count: width - s.count) + s.dropFirst(sign.count))
            case "splitlines":
                var lines = s.replacingAll("\r\n", with: "\n").replacingAll("\r", with: "\n").components(separatedByString: "\n")
                if lines.last == "" { lines.removeLast() }
                return .array(lines.map { .string($0) })
            case "format": return .string(try formatBraces(s, args, kwargs))
            case "find":
                guard let needle = args.first?.text, let r = s.range(ofString: needle) else { return .int(-1) }
                return .int(s.distance(from: s.startIndex, to: r.lowerBound))
            case "count": return .int(args.first.map { s.components(separatedByString: $0.text).count - 1 } ?? 0)
            default: return nil
            }
        case .object(let o):
            switch name {
            case "items": return .array(o.map { .array([.string($0.0), $0.1]) })
            case "keys": return .array(o.map { .string($0.0) })
            case "values": return .array(o.map(\.1))
            case "get":
                let key = args.first?.text ?? ""
                return o.last { $0.0 == key }?.1 ?? (args.count > 1 ? args[1] : .none)
            case "cycle":  // loop.cycle(a, b, ...): the loop object carries its index
                guard case .int(let i)? = o.last(where: { $0.0 == "index0" })?.1, !args.isEmpty else { return nil }
                return args[i % args.count]
            default: return nil
            }
        default: return nil
        }
    }

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

    static func titleCase(_ s: String) -> String {
        var out = ""
        var previousIsLetter = false
        for ch in s {
            out += previousIsLetter ? ch.lowercased() : ch.uppercased()
            previousIsLetter = ch.isLetter
        }
        return out
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        return components(separatedByString: target).joined(separator: replacement)
    }

    func components(separatedByString separator: String) -> [String] {
        guard !separator.isEmpty else { return [self] }
        var parts: [String] = []
        var rest = Substring(self)
        while let r = rest.range(ofString: separator) {
            parts.append(String(rest[..<r.lowerBound]))
            rest = rest[r.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }

    func range(ofString needle: String) -> Range<String.Index>? { Substring(self).range(ofString: needle) }

    func trimming(_ characters: String, leading: Bool, trailing: Bool) -> String {
        let set = Set(characters)
        var s = Substring(self)
        if leading { while let f = s.first, set.contains(f) { s.removeFirst() } }
        if trailing { while let l = s.last, set.contains(l) { s.removeLast() } }
        return String(s)
    }
}

extension Substring {
    func range(ofString needle: String) -> Range<String.Index>? {
        guard !needle.isEmpty else { return startIndex..<startIndex }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
