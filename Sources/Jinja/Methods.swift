/// Python methods called on template values (`s.strip()`, `d.items()`, `loop.cycle(...)`) and the string helpers
/// behind them.
extension Builtins {
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
            case "startswith", "endswith":  // a string or a tuple (list) of them
                let candidates: [Value] = { if case .array(let a, _)? = args.first { return a }; return args.prefix(1).map { $0 } }()
                return .bool(candidates.contains { name == "startswith" ? s.hasPrefix($0.text) : s.hasSuffix($0.text) })
            case "replace":
                let count: Int? = { if args.count > 2, case .int(let n) = args[2], n >= 0 { return n }; return nil }()
                return .string(s.pythonReplacing(args.first?.text ?? "", with: args.count > 1 ? args[1].text : "", count: count))
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
                guard case .array(let items, _)? = args.first else { throw TemplateError("join() needs a list") }
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
                var lines = s.pythonReplacing("\r\n", with: "\n").pythonReplacing("\r", with: "\n").components(separatedByString: "\n")
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
            case "items": return .array(o.map { .array([.string($0.0), $0.1], isTuple: true) })
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
        case .array(let a, _):
            switch name {
            case "index":
                guard let needle = args.first, let at = a.firstIndex(of: needle) else { throw TemplateError("value is not in list") }
                return .int(at)
            case "count": return .int(a.filter { $0 == (args.first ?? .undefined) }.count)
            default: return nil
            }
        default: return nil
        }
    }

    /// The methods `method` implements, by receiver: `x.name` without a call is that bound method (callable), as
    /// jinja2's attribute lookup finds a method before a dict item of the same name.
    static let stringMethods: Set<String> = ["strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize",
        "startswith", "endswith", "replace", "split", "rsplit", "swapcase", "index", "rfind", "rindex", "join", "isdigit",
        "isalpha", "isalnum", "isspace", "islower", "isupper", "zfill", "splitlines", "format", "find", "count"]
    static let dictMethods: Set<String> = ["items", "keys", "values", "get"]
    static let listMethods: Set<String> = ["index", "count"]

    static func boundMethod(_ receiver: Value, _ name: String) -> Value? {
        switch receiver {
        case .string where stringMethods.contains(name): return .builtin("str.\(name)")
        case .object where dictMethods.contains(name): return .builtin("dict.\(name)")
        case .array(_, let isTuple) where listMethods.contains(name): return .builtin("\(isTuple ? "tuple" : "list").\(name)")
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

extension Builtins {
    /// jinja2's `title` filter: the first character of each run after whitespace, '-', '(', '{', '[' or '<'
    /// uppercased, the rest lowercased ("they're" stays "They're", unlike Python's str.title).
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var atWordStart = true
        for ch in s {
            let separator = ch.isWhitespace || "-({[<".contains(ch)
            out += atWordStart ? ch.uppercased() : ch.lowercased()
            atWordStart = separator
        }
        return out
    }
}

extension String {
    /// Python's str.replace: at most `count` replacements; an empty `target` matches between every code point.
    func pythonReplacing(_ target: String, with replacement: String, count: Int? = nil) -> String {
        let limit = count ?? Int.max
        guard !target.isEmpty else {
            var out = "", done = 0
            for scalar in unicodeScalars {
                if done < limit { out += replacement; done += 1 }
                out.unicodeScalars.append(scalar)
            }
            if done < limit { out += replacement }
            return out
        }
        var parts = components(separatedByString: target)
        if parts.count - 1 > limit {
            parts = Array(parts.prefix(limit)) + [parts.dropFirst(limit).joined(separator: target)]
        }
        return parts.joined(separator: replacement)
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
