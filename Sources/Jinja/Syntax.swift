/// Expression syntax tree.
public indirect enum Expression: @unchecked Sendable {
    case literal(Value)
    case name(String)
    case list([Expression])
    case tuple([Expression])
    case dict([(Expression, Expression)])
    case attribute(Expression, String)
    case index(Expression, Expression)
    case slice(Expression, Expression?, Expression?, Expression?)
    case call(Expression, [Expression], [(String, Expression)])
    case filter(Expression, String, [Expression], [(String, Expression)])
    case test(Expression, String, [Expression], negated: Bool)
    case unary(String, Expression)
    case binary(String, Expression, Expression)
    case conditional(Expression, condition: Expression, otherwise: Expression?)
}

/// Statement syntax tree.
public indirect enum Node: @unchecked Sendable {
    case text(String)
    case output(Expression)
    case ifChain([(Expression, [Node])], otherwise: [Node])
    case forLoop(targets: [String], iterable: Expression, filter: Expression?, body: [Node], otherwise: [Node])
    case set(target: Expression, value: Expression)
    /// `{% set name | filters %}body{% endset %}`: `filter` applies the filters to the variable `setBlockVariable`.
    case setBlock(name: String, filter: Expression?, body: [Node])
    /// `{% with a = 1, b = 2 %}body{% endwith %}`: the names exist inside the body only.
    case with(assignments: [(String, Expression)], body: [Node])
    case macro(name: String, parameters: [(String, Expression?)], body: [Node])
    case breakLoop
    case continueLoop
}

/// Expression tokens.
enum Token: Equatable {
    case name(String)
    case string(String)
    case int(Int)
    case double(Double)
    case op(String)
}

enum ExpressionLexer {
    static let operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")",
                            "[", "]", "{", "}", ",", ".", ":", "|"]

    static func tokens(_ source: String) throws -> [Token] {
        let s = Array(source.unicodeScalars)
        var tokens: [Token] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "'" || c == "\"" {
                var j = i + 1
                var value = String.UnicodeScalarView()
                while j < s.count && s[j] != c {
                    if s[j] == "\\" && j + 1 < s.count {
                        j += 1
                        // Python's escapes; an unknown one keeps its backslash, as in Python.
                        func hex(_ digits: Int) -> Unicode.Scalar? {
                            guard j + digits < s.count, let v = UInt32(String(String.UnicodeScalarView(s[j + 1...j + digits])), radix: 16)
                            else { return nil }
                            return Unicode.Scalar(v)
                        }
                        switch s[j] {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        case "a": value.append("\u{07}")
                        case "b": value.append("\u{08}")
                        case "f": value.append("\u{0C}")
                        case "v": value.append("\u{0B}")
                        case "0": value.append("\u{00}")
                        case "x", "u", "U":
                            let digits = s[j] == "x" ? 2 : s[j] == "u" ? 4 : 8
                            guard let scalar = hex(digits) else { throw TemplateError("truncated \\\(s[j]) escape in '\(source)'") }
                            value.append(scalar)
                            j += digits
                        case "\\", "'", "\"", "\n": if s[j] != "\n" { value.append(s[j]) }  // backslash-newline: nothing
                        default: value.append("\\"); value.append(s[j])
                        }
                    } else {
                        value.append(s[j])
                    }
                    j += 1
                }
                guard j < s.count else { throw TemplateError("unterminated string in '\(source)'") }
                tokens.append(.string(String(value)))
                i = j + 1
                continue
            }
            if c.properties.numericType != nil && c.value < 128 {
                var j = i
                var isDouble = false
                while j < s.count, s[j].value < 128,
                      s[j].properties.numericType != nil || (s[j] == "." && !isDouble && j + 1 < s.count && s[j + 1].properties.numericType != nil)
                      || s[j] == "_" || ((s[j] == "e" || s[j] == "E") && j > i) {
                    if s[j] == "." || s[j] == "e" || s[j] == "E" { isDouble = true }
                    if (s[j] == "e" || s[j] == "E"), j + 1 < s.count, s[j + 1] == "-" || s[j + 1] == "+" { j += 1 }
                    j += 1
                }
                let text = String(String.UnicodeScalarView(s[i..<j])).replacingUnderscores
                if isDouble { tokens.append(.double(Double(text) ?? 0)) } else { tokens.append(.int(Int(text) ?? 0)) }
                i = j
                continue
            }
            if c == "_" || c.properties.isAlphabetic {
                var j = i
                while j < s.count && (s[j] == "_" || s[j].properties.isAlphabetic || (s[j].value < 128 && s[j].properties.numericType != nil)) { j += 1 }
                tokens.append(.name(String(String.UnicodeScalarView(s[i..<j]))))
                i = j
                continue
            }
            let rest = String(String.UnicodeScalarView(s[i..<min(i + 2, s.count)]))
            guard let op = operators.first(where: { rest.hasPrefix($0) }) else {
                throw TemplateError("unexpected character '\(c)' in '\(source)'")
            }
            tokens.append(.op(op))
            i += op.unicodeScalars.count
        }
        return tokens
    }
}

extension String {
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}
