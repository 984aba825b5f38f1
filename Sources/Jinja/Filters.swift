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
        default: throw TemplateError("no filter named '\(name)'")
        }
    }

    /// String and dict methods chat templates call; nil when `name` is not one (then it may be a macro).
    static func method(_ receiver: Value, _ name: String, _ args: [Value]) throws -> Value? {
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
            case "split":
                if let sep = args.first, case .string(let separator) = sep {
                    return .array(s.components(separatedByString: separator).map { .string($0) })
                }
                return .array(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
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
            default: return nil
            }
        default: return nil
        }
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
