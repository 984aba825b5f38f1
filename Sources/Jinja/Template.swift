/// A compiled chat template. `render` evaluates it the way transformers' jinja2 environment does.
public struct Template: Sendable {
    let nodes: [Node]

    public init(_ source: String) throws {
        // jinja2 defaults: newlines normalized to "\n", and one trailing newline dropped (keep_trailing_newline=False).
        var text = source.pythonReplacing("\r\n", with: "\n").pythonReplacing("\r", with: "\n")
        if text.hasSuffix("\n") { text.removeLast() }
        var pieces = try Lexer.pieces(text)[...]
        let (nodes, end) = try Self.parseBlock(&pieces, until: [])
        guard end == nil else { throw TemplateError("unexpected {% \(end!) %}") }
        self.nodes = nodes
    }

    /// Renders with `context` as the global variables (plus `raise_exception`, `namespace`, `range`).
    public func render(_ context: [String: Value]) throws -> String {
        var interpreter = Interpreter(globals: context)
        var out = ""
        try interpreter.run(nodes, into: &out)
        return out
    }

    /// Parses nodes until one of `terminators` (a statement keyword); returns the nodes and the terminator's source.
    static func parseBlock(_ pieces: inout ArraySlice<Piece>, until terminators: Set<String>) throws -> ([Node], String?) {
        var nodes: [Node] = []
        while let piece = pieces.popFirst() {
            switch piece {
            case .text(let t): nodes.append(.text(t))
            case .output(let source): nodes.append(.output(try ExpressionParser.parse(source)))
            case .statement(let source):
                let keyword = String(source.prefix { !$0.isWhitespace })
                if terminators.contains(keyword) { return (nodes, source) }
                if let node = try parseStatement(keyword: keyword, source: source, &pieces) { nodes.append(node) }
            }
        }
        return (nodes, nil)
    }

    private static func parseStatement(keyword: String, source: String, _ pieces: inout ArraySlice<Piece>) throws -> Node? {
        let rest = String(source.dropFirst(keyword.count)).trimmingWhitespace
        switch keyword {
        case "if":
            var branches: [(Expression, [Node])] = []
            var condition = try ExpressionParser.parse(rest)
            while true {
                let (body, end) = try parseBlock(&pieces, until: ["elif", "else", "endif"])
                branches.append((condition, body))
                guard let end else { throw TemplateError("missing {% endif %}") }
                if end.hasPrefix("elif") {
                    condition = try ExpressionParser.parse(String(end.dropFirst(4)))
                } else if end.hasPrefix("else") {
                    let (otherwise, close) = try parseBlock(&pieces, until: ["endif"])
                    guard close != nil else { throw TemplateError("missing {% endif %}") }
                    return .ifChain(branches, otherwise: otherwise)
                } else {
                    return .ifChain(branches, otherwise: [])
                }
            }
        case "for":
            var parser = ExpressionParser(try ExpressionLexer.tokens(rest))
            let parenthesized = parser.accept("(")  // `for (a, b) in pairs`
            var targets = [try parser.expectName()]
            while parser.accept(",") { targets.append(try parser.expectName()) }
            if parenthesized { try parser.expect(")") }
            try parser.expect("in")
            let iterable = try parser.expression(allowConditional: false)
            let filter = parser.accept("if") ? try parser.expression(allowConditional: false) : nil
            _ = parser.accept("recursive")
            guard parser.atEnd else { throw TemplateError("unexpected tokens in {% for \(rest) %}") }
            let (body, end) = try parseBlock(&pieces, until: ["else", "endfor"])
            guard let end else { throw TemplateError("missing {% endfor %}") }
            var otherwise: [Node] = []
            if end.hasPrefix("else") {
                let (elseBody, close) = try parseBlock(&pieces, until: ["endfor"])
                guard close != nil else { throw TemplateError("missing {% endfor %}") }
                otherwise = elseBody
            }
            return .forLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
        case "set":
            guard let eq = rest.firstIndex(of: "=") else {
                let (body, end) = try parseBlock(&pieces, until: ["endset"])
                guard end != nil else { throw TemplateError("missing {% endset %}") }
                let name = String(rest.prefix { $0 != "|" }).trimmingWhitespace
                let filters = rest.drop { $0 != "|" }
                let filter = filters.isEmpty ? nil : try ExpressionParser.parse(Interpreter.setBlockVariable + " " + filters)
                return .setBlock(name: name, filter: filter, body: body)
            }
            // `set a, b = 1, 2` and `set a, b = pair`: several names take the items of the value.
            let names = Self.topLevelParts(String(rest[..<eq]))
            let target = names.count > 1 ? .list(try names.map { try ExpressionParser.parse($0) }) : try ExpressionParser.parse(String(rest[..<eq]))
            let values = Self.topLevelParts(String(rest[rest.index(after: eq)...]))
            let value = values.count > 1 ? .list(try values.map { try ExpressionParser.parse($0) })
                : try ExpressionParser.parse(String(rest[rest.index(after: eq)...]))
            return .set(target: target, value: value)
        case "with":
            var assignments: [(String, Expression)] = []
            for part in Self.topLevelParts(rest) where !part.trimmingWhitespace.isEmpty {
                guard let eq = part.firstIndex(of: "=") else { throw TemplateError("expected name = value in {% with \(rest) %}") }
                assignments.append((String(part[..<eq]).trimmingWhitespace, try ExpressionParser.parse(String(part[part.index(after: eq)...]))))
            }
            let (body, end) = try parseBlock(&pieces, until: ["endwith"])
            guard end != nil else { throw TemplateError("missing {% endwith %}") }
            return .with(assignments: assignments, body: body)
        case "macro":
            var parser = ExpressionParser(try ExpressionLexer.tokens(rest))
            let name = try parser.expectName()
            try parser.expect("(")
            var parameters: [(String, Expression?)] = []
            while !parser.accept(")") {
                let p = try parser.expectName()
                parameters.append((p, parser.accept("=") ? try parser.expression() : nil))
                if !parser.accept(",") { try parser.expect(")"); break }
            }
            let (body, end) = try parseBlock(&pieces, until: ["endmacro"])
            guard end != nil else { throw TemplateError("missing {% endmacro %}") }
            return .macro(name: name, parameters: parameters, body: body)
        case "break": return .breakLoop
        case "continue": return .continueLoop
        case "generation", "endgeneration": return nil  // transformers' assistant-mask markers: no output
        default:
            throw TemplateError("unsupported statement {% \(source) %}")
        }
    }
}

extension Template {
    /// `text` split at commas outside brackets and string literals.
    static func topLevelParts(_ text: String) -> [String] {
        var parts: [String] = [], current = "", depth = 0
        var quote: Character?
        for ch in text {
            if let q = quote {
                if ch == q { quote = nil }
            } else if ch == "'" || ch == "\"" {
                quote = ch
            } else if "([{".contains(ch) {
                depth += 1
            } else if ")]}".contains(ch) {
                depth -= 1
            } else if ch == "," && depth == 0 {
                parts.append(current); current = ""; continue
            }
            current.append(ch)
        }
        parts.append(current)
        return parts
    }
}
