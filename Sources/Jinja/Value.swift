/// A value inside a template, with Python's semantics for printing, truthiness and comparison.
/// Objects keep insertion order: `tojson` and `items()` must print keys as the caller wrote them.
public indirect enum Value: Sendable, Equatable {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// A list, or a tuple (`isTuple`): the same in every use but printing, equality and type name.
    case array([Value], isTuple: Bool = false)
    case object([(String, Value)])
    case namespace(Namespace)
    case macro(Macro)
    /// A global function of transformers' chat-template environment (`raise_exception`, `strftime_now`, ...): defined,
    /// callable, shadowed by a variable of the same name.
    case builtin(String)

    public static func == (a: Value, b: Value) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.bool(let x), .int(let y)), (.int(let y), .bool(let x)): return (x ? 1 : 0) == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x, let t), .array(let y, let u)): return x == y && t == u
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { k, v in y.first { $0.0 == k }?.1 == v }
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.builtin(let x), .builtin(let y)): return x == y
        default: return false
        }
    }

    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a, _): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .namespace, .macro, .builtin: return true
        }
    }

    public subscript(key: String) -> Value {
        switch self {
        case .object(let pairs): return pairs.last { $0.0 == key }?.1 ?? .undefined
        case .namespace(let ns): return ns.values[key] ?? .undefined
        default: return .undefined
        }
    }

    /// `str(x)` as Python prints it (what `{{ x }}` outputs).
    public var text: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr(topLevel: true)
        }
    }

    /// Python's `repr`, used for containers (`{{ [1, 'a'] }}` prints `[1, 'a']`).
    func repr(topLevel: Bool = false) -> String {
        switch self {
        case .undefined: return topLevel ? "" : "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Self.pythonFloat(d)
        case .string(let s): return topLevel ? s : Self.pythonStringRepr(s)
        case .array(let a, false): return "[" + a.map { $0.repr() }.joined(separator: ", ") + "]"
        case .array(let a, true): return "(" + a.map { $0.repr() }.joined(separator: ", ") + (a.count == 1 ? ",)" : ")")
        case .object(let o): return "{" + o.map { Self.pythonStringRepr($0.0) + ": " + $0.1.repr() }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case .macro: return "<Macro>"
        case .builtin(let name): return "<function \(name)>"
        }
    }

    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        if d == d.rounded() && abs(d) < 1e16 {
            return (d == 0 && d.sign == .minus) ? "-0.0" : String(Int(d)) + ".0"
        }
        return "\(d)"  // shortest round-tripping digits and e±XX exponents, as Python's repr
    }

    static func pythonStringRepr(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(ch) == quote {
                    out += "\\" + String(quote)
                } else if ch != " " && !ch.isPythonPrintable {  // \xNN, \uNNNN, \UNNNNNNNN, as Python's repr
                    let hex = String(ch.value, radix: 16)
                    let width = ch.value < 0x100 ? 2 : ch.value < 0x10000 ? 4 : 8
                    out += "\\" + (width == 2 ? "x" : width == 4 ? "u" : "U") + String(repeating: "0", count: width - hex.count) + hex
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        out.append(quote)
        return out
    }
}

/// `namespace(...)`: the one mutable object templates have, so a loop can set a flag seen after it.
public final class Namespace: @unchecked Sendable {
    var values: [String: Value]
    init(_ values: [String: Value]) { self.values = values }
}

/// A `{% macro %}` definition.
public final class Macro: @unchecked Sendable {
    let parameters: [(String, Expression?)]
    let body: [Node]
    init(parameters: [(String, Expression?)], body: [Node]) {
        self.parameters = parameters
        self.body = body
    }
}

extension Unicode.Scalar {
    /// Python's str.isprintable for one character: not a control, format, surrogate, private-use, unassigned or
    /// separator character (the space is handled by the caller).
    var isPythonPrintable: Bool {
        switch properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }
}
