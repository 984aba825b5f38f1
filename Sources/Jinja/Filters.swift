import Foundation

/// The Jinja filters chat templates use (`x | name(args)`), as jinja2 defines them.
extension Builtins {
    static func filter(_ name: String, _ v: Value, _ args: [Value], _ kwargs: [(String, Value)],
                       interpreter: inout Interpreter) throws -> Value {
        func kw(_ key: String, _ position: Int) -> Value? {
            kwargs.first { $0.0 == key }?.1 ?? (position < args.count ? args[position] : nil)
        }
        switch name {
        case "trim":
            guard let chars = kw("chars", 0), case .string(let set) = chars else { return .string(v.text.trimmingWhitespace) }
            return .string(v.text.trimming(set, leading: true, trailing: true))
        case "upper": return .string(v.text.uppercased())
        case "lower": return .string(v.text.lowercased())
        case "title": return .string(jinjaTitle(v.text))
        case "capitalize": return .string(v.text.prefix(1).uppercased() + v.text.dropFirst().lowercased())
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.unicodeScalars.count)  // Python's len: code points
            case .array(let a, _): return .int(a.count)
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
        case "tojson":  // transformers' tojson: json.dumps(x, ensure_ascii=False, indent, separators, sort_keys)
            var options = JSONText.Options(indent: { if case .int(let i)? = kw("indent", 0) { return i }; return nil }())
            if case .array(let pair, _)? = kwargs.first(where: { $0.0 == "separators" })?.1, pair.count == 2 {
                (options.itemSeparator, options.keySeparator) = (pair[0].text, pair[1].text)
            }
            options.sortKeys = kwargs.first { $0.0 == "sort_keys" }?.1.isTruthy ?? false
            options.ensureASCII = kwargs.first { $0.0 == "ensure_ascii" }?.1.isTruthy ?? false
            return .string(try JSONText.encode(v, options))
        case "replace":
            guard args.count >= 2 else { throw TemplateError("replace needs two arguments") }
            let count: Int? = { if case .int(let n)? = kw("count", 2), n >= 0 { return n }; return nil }()
            return .string(v.text.pythonReplacing(args[0].text, with: args[1].text, count: count))
        case "string": return .string(v.text)
        case "int":  // jinja2: int(value), else int(float(value)), else the default
            let fallback = kw("default", 0) ?? .int(0)
            switch v {
            case .int: return v
            case .double(let d) where d.isFinite: return .int(Int(d))
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s):
                let t = s.trimmingWhitespace
                if let i = Int(t) { return .int(i) }
                if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return fallback
            default: return fallback
            }
        case "float":
            let fallback = kw("default", 0) ?? .double(0)
            switch v {
            case .int(let i): return .double(Double(i))
            case .double: return v
            case .bool(let b): return .double(b ? 1 : 0)
            case .string(let s): return Double(s.trimmingWhitespace).map { .double($0) } ?? fallback
            default: return fallback
            }
        case "list": return .array(try interpreter.iterate(v))
        case "items":
            guard case .object(let o) = v else { return .array([]) }
            return .array(o.map { .array([.string($0.0), $0.1], isTuple: true) })
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
        case "unique":  // first of each, compared case-insensitively unless asked (jinja2's default)
            let caseSensitive = kw("case_sensitive", 0)?.isTruthy ?? false
            let attr = kw("attribute", 1)?.text
            func key(_ x: Value) -> Value {
                let k = attr.map { x[$0] } ?? x
                if !caseSensitive, case .string(let s) = k { return .string(s.lowercased()) }
                return k
            }
            var seen: [Value] = [], out: [Value] = []
            for item in try interpreter.iterate(v) where !seen.contains(key(item)) {
                seen.append(key(item)); out.append(item)
            }
            return .array(out)
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            default: throw TemplateError("bad operand type for abs(): '\(v.typeName)'")
            }
        case "round":
            let precision: Int = { if case .int(let p)? = kw("precision", 0) { return p }; return 0 }()
            let method = kw("method", 1)?.text ?? "common"
            guard case let x? = { () -> Double? in
                switch v { case .int(let i): return Double(i); case .double(let d): return d; default: return nil }
            }() else { throw TemplateError("round needs a number") }
            var scale = 1.0
            for _ in 0..<max(0, precision) { scale *= 10 }
            switch method {
            case "common":
                if case .int = v, precision >= 0 { return v }  // Python's round keeps an int an int
                // Python rounds the exact binary value to `precision` decimals (half to even), as printf does.
                return .double(Double(String(format: "%.\(max(0, min(precision, 17)))f", x)) ?? x)
            case "floor": return .double((x * scale).rounded(.down) / scale)
            case "ceil": return .double((x * scale).rounded(.up) / scale)
            default: throw TemplateError("method must be 'common', 'ceil' or 'floor'")
            }
        case "safe": return v
        case "dictsort":  // (key, value) tuples sorted by key or value, case-insensitively unless asked
            guard case .object(let o) = v else { return .array([]) }
            let caseSensitive = kw("case_sensitive", 0)?.isTruthy ?? false
            let byValue = kw("by", 1)?.text == "value"
            let reverse = kw("reverse", 2)?.isTruthy ?? false
            func key(_ pair: (String, Value)) -> Value {
                let k = byValue ? pair.1 : .string(pair.0)
                if !caseSensitive, case .string(let s) = k { return .string(s.lowercased()) }
                return k
            }
            var failure: (any Error)?
            var sorted = o.sorted { a, b in
                do { return try compare(key(a), key(b)) < 0 } catch { failure = error; return false }
            }
            if let failure { throw failure }
            if reverse { sorted.reverse() }
            return .array(sorted.map { .array([.string($0.0), $0.1], isTuple: true) })
        case "indent":  // width: a number of spaces or the indent string itself
            let width = kw("width", 0)
            let first = kw("first", 1)?.isTruthy ?? false
            let pad: String = {
                if case .string(let s)? = width { return s }
                if case .int(let w)? = width { return String(repeating: " ", count: max(0, w)) }
                return "    "
            }()
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
}
