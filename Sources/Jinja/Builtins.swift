#if canImport(Glibc)
import Glibc
#endif
/// Operators, filters, tests, methods and globals, with Python's semantics where chat templates can tell.
enum Builtins {
    static func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        switch op {
        case "==": return .bool(a == b)
        case "!=": return .bool(a != b)
        case "<", ">", "<=", ">=":
            let c = try compare(a, b)
            switch op {
            case "<": return .bool(c < 0)
            case ">": return .bool(c > 0)
            case "<=": return .bool(c <= 0)
            default: return .bool(c >= 0)
            }
        case "in": return .bool(try contains(b, a))
        case "~": return .string(a.text + b.text)
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.array(let x, _), .array(let y, _)): return .array(x + y)
            default: return try arithmetic(op, a, b)
            }
        case "*":
            if case .string(let s) = a, case .int(let n) = b { return .string(String(repeating: s, count: max(0, n))) }
            if case .int(let n) = a, case .string(let s) = b { return .string(String(repeating: s, count: max(0, n))) }
            if case .array(let s, _) = a, case .int(let n) = b { return .array(Array(repeatElement(s, count: max(0, n)).joined())) }
            return try arithmetic(op, a, b)
        case "%":
            // 'fmt' % value or 'fmt' % (a, b): Python's printf-style formatting.
            if case .string(let format) = a {
                if case .array(let items, _) = b { return .string(try formatPercent(format, items)) }
                return .string(try formatPercent(format, [b]))
            }
            return try arithmetic(op, a, b)
        default: return try arithmetic(op, a, b)
        }
    }

    private static func number(_ v: Value) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    private static func arithmetic(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        let ints: (Int, Int)? = {
            switch (a, b) {
            case (.int(let x), .int(let y)): return (x, y)
            case (.bool(let x), .int(let y)): return (x ? 1 : 0, y)
            case (.int(let x), .bool(let y)): return (x, y ? 1 : 0)
            default: return nil
            }
        }()
        guard let x = number(a), let y = number(b) else {
            throw TemplateError("unsupported operand types for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        switch op {
        case "+": return ints.map { .int($0.0 + $0.1) } ?? .double(x + y)
        case "-": return ints.map { .int($0.0 - $0.1) } ?? .double(x - y)
        case "*": return ints.map { .int($0.0 * $0.1) } ?? .double(x * y)
        case "/":
            guard y != 0 else { throw TemplateError("division by zero") }
            return .double(x / y)
        case "//":
            guard y != 0 else { throw TemplateError("integer division or modulo by zero") }
            if let (i, j) = ints { return .int(Int((Double(i) / Double(j)).rounded(.down))) }
            return .double((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw TemplateError("integer division or modulo by zero") }
            if let (i, j) = ints { let r = i % j; return .int(r != 0 && (r < 0) != (j < 0) ? r + j : r) }
            let r = x.truncatingRemainder(dividingBy: y)
            return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
        case "**":
            if let (i, j) = ints, j >= 0 { var r = 1; for _ in 0..<j { r *= i }; return .int(r) }
            return .double(_pow(x, y))
        default: throw TemplateError("unknown operator \(op)")
        }
    }

    private static func _pow(_ x: Double, _ y: Double) -> Double {
        var result = 1.0
        if y == y.rounded() && abs(y) < 1024 {
            for _ in 0..<Int(abs(y)) { result *= x }
            return y < 0 ? 1 / result : result
        }
        return .nan
    }

    static func compare(_ a: Value, _ b: Value) throws -> Int {
        if let x = number(a), let y = number(b) { return x < y ? -1 : x > y ? 1 : 0 }
        if case .string(let x) = a, case .string(let y) = b {
            return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars) ? -1 : x == y ? 0 : 1
        }
        throw TemplateError("'<' not supported between '\(a.typeName)' and '\(b.typeName)'")
    }

    static func contains(_ container: Value, _ item: Value) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let needle) = item else { throw TemplateError("'in <string>' requires string as left operand") }
            return needle.isEmpty || s.contains(needle)
        case .array(let a, _): return a.contains(item)
        case .object(let o): return o.contains { $0.0 == item.text && { if case .string = item { return true } else { return false } }() }
        case .undefined: throw TemplateError("argument of type 'Undefined' is not iterable")
        default: throw TemplateError("argument of type '\(container.typeName)' is not iterable")
        }
    }

    static func slice(_ base: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws -> Value {
        func int(_ v: Value?) -> Int? { if case .int(let i)? = v { return i }; return nil }
        let elements: [Value]
        var isString = false
        switch base {
        case .array(let a, _): elements = a
        case .string(let s): elements = s.map { .string(String($0)) }; isString = true
        default: throw TemplateError("'\(base.typeName)' object is not subscriptable")
        }
        let n = elements.count
        let st = int(step) ?? 1
        guard st != 0 else { throw TemplateError("slice step cannot be zero") }
        func clamp(_ v: Int?, _ def: Int) -> Int {
            guard var i = v else { return def }
            if i < 0 { i += n }
            return st > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
        }
        var result: [Value] = []
        var i = clamp(int(start), st > 0 ? 0 : n - 1)
        let end = clamp(int(stop), st > 0 ? n : -1)
        while st > 0 ? i < end : i > end {
            result.append(elements[i])
            i += st
        }
        return isString ? .string(result.map(\.text).joined()) : .array(result)
    }

    /// The functions transformers' chat-template environment defines (plus Jinja's own globals).
    static let globalNames: Set<String> = ["raise_exception", "strftime_now", "namespace", "dict", "range"]

    static func global(_ name: String, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        switch name {
        case "raise_exception": throw TemplateError(args.first?.text ?? "raise_exception called")
        case "strftime_now":  // the local time, as transformers' datetime.now().strftime(format)
            guard case .string(let format)? = args.first else { throw TemplateError("strftime_now() needs a format string") }
            var now = time(nil)
            var parts = tm()
            localtime_r(&now, &parts)
            var buffer = [CChar](repeating: 0, count: 256)
            let n = strftime(&buffer, buffer.count, format, &parts)
            return .string(String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        case "namespace": return .namespace(Namespace(Dictionary(kwargs, uniquingKeysWith: { _, b in b })))
        case "dict": return .object(kwargs)
        case "range":
            let ints = args.compactMap { if case .int(let i) = $0 { return i } else { return nil } }
            let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count > 2 ? ints[2] : 1)
            guard step != 0 else { throw TemplateError("range() arg 3 must not be zero") }
            // transformers renders in jinja2's sandbox, which refuses ranges over MAX_RANGE items.
            let count = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
            guard count <= 100_000 else { throw TemplateError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
            return .array(Swift.stride(from: start, to: stop, by: step).map { .int($0) })
        default: throw TemplateError("'\(name)' is undefined")
        }
    }

    static func test(_ name: String, _ v: Value, _ args: [Value]) throws -> Bool {
        switch name {
        case "defined": if case .undefined = v { return false }; return true
        case "undefined": if case .undefined = v { return true }; return false
        case "none": if case .none = v { return true }; return false
        case "string": if case .string = v { return true }; return false
        case "mapping": if case .object = v { return true }; return false
        // Undefined iterates as empty and has a length in jinja2; bool is an int in Python.
        case "sequence": switch v { case .array, .string, .object, .undefined: return true; default: return false }
        case "iterable": switch v { case .array, .string, .object, .undefined: return true; default: return false }
        case "number": switch v { case .int, .double, .bool: return true; default: return false }
        case "callable": switch v { case .macro, .builtin: return true; default: return false }
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": return v == .bool(true) && { if case .bool = v { return true }; return false }()
        case "false": if case .bool(false) = v { return true }; return false
        case "sameas":
            guard let other = args.first else { return false }
            switch (v, other) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            default: return false
            }
        case "eq", "equalto", "==": return v == (args.first ?? .undefined)
        case "ne", "!=": return v != (args.first ?? .undefined)
        case "odd": if case .int(let i) = v { return i % 2 != 0 }; return false
        case "even": if case .int(let i) = v { return i % 2 == 0 }; return false
        case "divisibleby": if case .int(let i) = v, case .int(let d)? = args.first, d != 0 { return i % d == 0 }; return false
        case "lower": return v.text == v.text.lowercased()
        case "upper": return v.text == v.text.uppercased()
        case "in": return try contains(args.first ?? .undefined, v)
        case "gt", ">": return try compare(v, args.first ?? .undefined) > 0
        case "lt", "<": return try compare(v, args.first ?? .undefined) < 0
        case "ge", ">=": return try compare(v, args.first ?? .undefined) >= 0
        case "le", "<=": return try compare(v, args.first ?? .undefined) <= 0
        default: throw TemplateError("no test named '\(name)'")
        }
    }
}
