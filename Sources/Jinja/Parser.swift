/// Recursive-descent parser with jinja2's precedence: or < and < not < comparisons (incl. in) < + - < ~ < * / // %
/// < ** < unary; postfix access, calls, `|filters` and `is tests` bind tighter than any binary operator.
struct ExpressionParser {
    private var tokens: [Token]
    private var position = 0

    init(_ tokens: [Token]) { self.tokens = tokens }

    static func parse(_ source: String) throws -> Expression {
        var parser = ExpressionParser(try ExpressionLexer.tokens(source))
        let expression = try parser.expression()
        guard parser.atEnd else { throw TemplateError("unexpected '\(parser.peek.map { "\($0)" } ?? "")' in '\(source)'") }
        return expression
    }

    var atEnd: Bool { position >= tokens.count }
    var peek: Token? { atEnd ? nil : tokens[position] }

    mutating func next() -> Token? {
        defer { position += 1 }
        return peek
    }

    mutating func accept(_ op: String) -> Bool {
        if peek == .op(op) || peek == .name(op) { position += 1; return true }
        return false
    }

    mutating func expect(_ op: String) throws {
        guard accept(op) else { throw TemplateError("expected '\(op)'") }
    }

    mutating func expectName() throws -> String {
        guard case .name(let n)? = next() else { throw TemplateError("expected a name") }
        return n
    }

    mutating func expression(allowConditional: Bool = true) throws -> Expression {
        let value = try or()
        guard allowConditional, accept("if") else { return value }
        let condition = try or()
        let otherwise = accept("else") ? try expression() : nil
        return .conditional(value, condition: condition, otherwise: otherwise)
    }

    mutating func or() throws -> Expression {
        var left = try and()
        while accept("or") { left = .binary("or", left, try and()) }
        return left
    }

    mutating func and() throws -> Expression {
        var left = try not()
        while accept("and") { left = .binary("and", left, try not()) }
        return left
    }

    mutating func not() throws -> Expression {
        if accept("not") { return .unary("not", try not()) }
        return try compare()
    }

    mutating func compare() throws -> Expression {
        var left = try math1()
        while true {
            if let op = ["==", "!=", "<", ">", "<=", ">="].first(where: { peek == .op($0) }) {
                position += 1
                left = .binary(op, left, try math1())
            } else if accept("in") {
                left = .binary("in", left, try math1())
            } else if peek == .name("not"), position + 1 < tokens.count, tokens[position + 1] == .name("in") {
                position += 2
                left = .unary("not", .binary("in", left, try math1()))
            } else {
                return left
            }
        }
    }

    mutating func math1() throws -> Expression {
        var left = try concat()
        while let op = ["+", "-"].first(where: { peek == .op($0) }) {
            position += 1
            left = .binary(op, left, try concat())
        }
        return left
    }

    mutating func concat() throws -> Expression {
        var left = try math2()
        while accept("~") { left = .binary("~", left, try math2()) }
        return left
    }

    mutating func math2() throws -> Expression {
        var left = try pow()
        while let op = ["*", "/", "//", "%"].first(where: { peek == .op($0) }) {
            position += 1
            left = .binary(op, left, try pow())
        }
        return left
    }

    mutating func pow() throws -> Expression {
        var left = try unary()
        while accept("**") { left = .binary("**", left, try unary()) }
        return left
    }

    mutating func unary(withFilter: Bool = true) throws -> Expression {
        var node: Expression
        if accept("-") {
            node = .unary("-", try unary(withFilter: false))
        } else if accept("+") {
            node = try unary(withFilter: false)
        } else {
            node = try postfix(try primary())
        }
        return withFilter ? try filters(node) : node
    }

    mutating func primary() throws -> Expression {
        guard let token = next() else { throw TemplateError("unexpected end of expression") }
        switch token {
        case .string(var s):
            while case .string(let more)? = peek { s += more; position += 1 }  // adjacent literals concatenate
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            if accept(")") { return .tuple([]) }
            let first = try expression()
            if accept(",") {  // a tuple: (a, b), (a,)
                var items = [first]
                while !accept(")") {
                    items.append(try expression())
                    if !accept(",") { try expect(")"); break }
                }
                return .tuple(items)
            }
            try expect(")")
            return first
        case .op("["):
            var items: [Expression] = []
            while !accept("]") {
                items.append(try expression())
                if !accept(",") { try expect("]"); break }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(Expression, Expression)] = []
            while !accept("}") {
                let key = try expression()
                try expect(":")
                pairs.append((key, try expression()))
                if !accept(",") { try expect("}"); break }
            }
            return .dict(pairs)
        default:
            throw TemplateError("unexpected \(token)")
        }
    }

    mutating func postfix(_ base: Expression) throws -> Expression {
        var node = base
        while true {
            if accept(".") {
                guard let token = next() else { throw TemplateError("expected an attribute") }
                switch token {
                case .name(let n): node = .attribute(node, n)
                case .int(let i): node = .index(node, .literal(.int(i)))
                default: throw TemplateError("bad attribute \(token)")
                }
            } else if accept("[") {
                var parts: [Expression?] = [nil]
                var sawColon = false
                while !accept("]") {
                    if accept(":") { sawColon = true; parts.append(nil); continue }
                    parts[parts.count - 1] = try expression()
                }
                if sawColon {
                    while parts.count < 3 { parts.append(nil) }
                    node = .slice(node, parts[0], parts[1], parts[2])
                } else {
                    guard let index = parts[0] else { throw TemplateError("empty subscript") }
                    node = .index(node, index)
                }
            } else if peek == .op("(") {
                position += 1
                let (args, kwargs) = try arguments()
                node = .call(node, args, kwargs)
            } else {
                return node
            }
        }
    }

    /// Call arguments after '(' up to and including ')'.
    mutating func arguments() throws -> ([Expression], [(String, Expression)]) {
        var args: [Expression] = []
        var kwargs: [(String, Expression)] = []
        while !accept(")") {
            if case .name(let n)? = peek, position + 1 < tokens.count, tokens[position + 1] == .op("=") {
                position += 2
                kwargs.append((n, try expression()))
            } else {
                args.append(try expression())
            }
            if !accept(",") { try expect(")"); break }
        }
        return (args, kwargs)
    }

    mutating func filters(_ base: Expression) throws -> Expression {
        var node = base
        while true {
            if accept("|") {
                let name = try expectName()
                var args: [Expression] = []
                var kwargs: [(String, Expression)] = []
                if accept("(") { (args, kwargs) = try arguments() }
                node = .filter(node, name, args, kwargs)
            } else if accept("is") {
                let negated = accept("not")
                var name = try expectName()
                if name == "none" || name == "None" { name = "none" }
                if name == "true" || name == "false" { name = name.lowercased() }
                var args: [Expression] = []
                if accept("(") {
                    args = try arguments().0
                } else if let t = peek, !isTerminator(t) || t == .op("[") || t == .op("{") {
                    args = [try primary()]  // `is divisibleby 3`, `is sameas none`, `is in [1, 2]`
                }
                node = .test(node, name, args, negated: negated)
            } else {
                return node
            }
        }
    }

    private func isTerminator(_ t: Token) -> Bool {
        switch t {
        case .op: return true
        case .name(let n): return ["and", "or", "else", "if", "in", "not", "is"].contains(n)
        default: return false
        }
    }
}
