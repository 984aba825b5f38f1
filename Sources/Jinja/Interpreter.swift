/// Evaluates a template's nodes: jinja2 scoping (a loop body's `set` stays in the loop; `namespace` is the way
/// out), Python value semantics, and the filters, tests and methods chat templates use.
struct Interpreter {
    /// The name a `{% set x | filters %}` block's text has while its filters run.
    static let setBlockVariable = "__set_block__"
    private var scopes: [[String: Value]]

    enum Flow { case normal, breakLoop, continueLoop }

    init(globals: [String: Value]) {
        scopes = [globals]
    }

    mutating func run(_ nodes: [Node], into out: inout String) throws {
        _ = try execute(nodes, into: &out)
    }

    private mutating func execute(_ nodes: [Node], into out: inout String) throws -> Flow {
        for node in nodes {
            switch node {
            case .text(let t): out += t
            case .output(let e): out += try eval(e).text
            case .ifChain(let branches, let otherwise):
                var taken = false
                for (condition, body) in branches where try eval(condition).isTruthy {
                    taken = true
                    let flow = try execute(body, into: &out)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try execute(otherwise, into: &out)
                    if flow != .normal { return flow }
                }
            case .forLoop(let targets, let iterable, let filter, let body, let otherwise):
                try runLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, into: &out)
            case .set(let target, let value):
                let v = try eval(value)
                switch target {
                case .name(let n): scopes[scopes.count - 1][n] = v
                case .attribute(.name(let ns), let attr):
                    guard case .namespace(let namespace) = lookup(ns) else { throw TemplateError("cannot assign attribute on non-namespace \(ns)") }
                    guard !attr.hasPrefix("_") else {  // transformers' sandbox rule
                        throw TemplateError("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(attr)'.")
                    }
                    namespace.values[attr] = v
                case .list(let names):
                    let items = try iterate(v)
                    for (name, item) in zip(names, items) { if case .name(let n) = name { scopes[scopes.count - 1][n] = item } }
                default: throw TemplateError("cannot assign to \(target)")
                }
            case .setBlock(let name, let filter, let body):
                var captured = ""
                _ = try execute(body, into: &captured)
                var value = Value.string(captured)
                if let filter {
                    scopes.append([Self.setBlockVariable: value])
                    defer { scopes.removeLast() }
                    value = try eval(filter)
                }
                scopes[scopes.count - 1][name] = value
            case .with(let assignments, let body):
                var scope: [String: Value] = [:]
                for (name, expression) in assignments { scope[name] = try eval(expression) }
                scopes.append(scope)
                defer { scopes.removeLast() }
                let flow = try execute(body, into: &out)
                if flow != .normal { return flow }
            case .macro(let name, let parameters, let body):
                scopes[scopes.count - 1][name] = .macro(Macro(parameters: parameters, body: body))
            case .breakLoop: return .breakLoop
            case .continueLoop: return .continueLoop
            }
        }
        return .normal
    }

    private mutating func runLoop(targets: [String], iterable: Expression, filter: Expression?, body: [Node],
                                  otherwise: [Node], into out: inout String) throws {
        var items = try iterate(try eval(iterable))
        if let filter {
            items = try items.filter { item in
                scopes.append(bind(targets, item))
                defer { scopes.removeLast() }
                return try eval(filter).isTruthy
            }
        }
        // jinja2 runs `else` unless some iteration reached the end of the body (a break or continue in every
        // iteration counts as none), not only for an empty sequence.
        var completed = false
        for (i, item) in items.enumerated() {
            var scope = bind(targets, item)
            scope["loop"] = .object([
                ("index", .int(i + 1)), ("index0", .int(i)), ("first", .bool(i == 0)), ("last", .bool(i == items.count - 1)),
                ("length", .int(items.count)), ("revindex", .int(items.count - i)), ("revindex0", .int(items.count - i - 1)),
                ("previtem", i > 0 ? items[i - 1] : .undefined), ("nextitem", i + 1 < items.count ? items[i + 1] : .undefined),
            ])
            scopes.append(scope)
            let flow = try execute(body, into: &out)
            scopes.removeLast()
            if flow == .breakLoop { break }
            if flow == .normal { completed = true }
        }
        if !completed { _ = try execute(otherwise, into: &out) }
    }

    private func bind(_ targets: [String], _ item: Value) -> [String: Value] {
        if targets.count == 1 { return [targets[0]: item] }
        var scope: [String: Value] = [:]
        let parts: [Value]
        switch item {
        case .array(let a, _): parts = a
        default: parts = []
        }
        for (k, name) in targets.enumerated() { scope[name] = k < parts.count ? parts[k] : .undefined }
        return scope
    }

    func lookup(_ name: String) -> Value {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        return Builtins.globalNames.contains(name) ? .builtin(name) : .undefined
    }

    func iterate(_ v: Value) throws -> [Value] {
        switch v {
        case .array(let a, _): return a
        case .object(let o): return o.map { .string($0.0) }
        case .string(let s): return s.map { .string(String($0)) }
        case .undefined: return []
        default: throw TemplateError("'\(v.typeName)' object is not iterable")
        }
    }

    mutating func eval(_ e: Expression) throws -> Value {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .array(try items.map { try eval($0) })
        case .tuple(let items): return .array(try items.map { try eval($0) }, isTuple: true)
        case .dict(let pairs): return .object(try pairs.map { (try eval($0.0).text, try eval($0.1)) })
        case .attribute(let base, let name): return try attribute(try eval(base), name)
        case .index(let base, let index): return try subscriptValue(try eval(base), try eval(index))
        case .slice(let base, let a, let b, let c):
            return try Builtins.slice(try eval(base), a.map { try eval($0) }, b.map { try eval($0) }, c.map { try eval($0) })
        case .call(let callee, let args, let kwargs):
            let argv = try args.map { try eval($0) }
            let kw = try kwargs.map { ($0.0, try eval($0.1)) }
            return try call(callee, argv, kw)
        case .filter(let base, let name, let args, let kwargs):
            let value = try eval(base)
            let argv = try args.map { try eval($0) }
            let kw = try kwargs.map { ($0.0, try eval($0.1)) }
            return try Builtins.filter(name, value, argv, kw, interpreter: &self)
        case .test(let base, let name, let args, let negated):
            let result = try Builtins.test(name, try eval(base), try args.map { try eval($0) })
            return .bool(result != negated)
        case .unary(let op, let operand):
            let v = try eval(operand)
            if op == "not" { return .bool(!v.isTruthy) }
            switch v {
            case .int(let i): return .int(-i)
            case .double(let d): return .double(-d)
            default: throw TemplateError("bad operand for unary -: '\(v.typeName)'")
            }
        case .binary(let op, let l, let r):
            if op == "and" { let a = try eval(l); return a.isTruthy ? try eval(r) : a }
            if op == "or" { let a = try eval(l); return a.isTruthy ? a : try eval(r) }
            return try Builtins.binary(op, try eval(l), try eval(r))
        case .conditional(let value, let condition, let otherwise):
            if try eval(condition).isTruthy { return try eval(value) }
            return try otherwise.map { try eval($0) } ?? .undefined
        }
    }

    private func attribute(_ base: Value, _ name: String) throws -> Value {
        if case .undefined = base { throw TemplateError("'undefined' has no attribute '\(name)'") }
        if let method = Builtins.boundMethod(base, name) { return method }
        return base[name]  // an attribute of None is undefined, as in jinja2
    }

    private func subscriptValue(_ base: Value, _ index: Value) throws -> Value {
        switch (base, index) {
        case (.undefined, _): throw TemplateError("'undefined' is not subscriptable")
        case (.array(let a, _), .int(let i)):
            let k = i < 0 ? a.count + i : i
            return a.indices.contains(k) ? a[k] : .undefined
        case (.string(let s), .int(let i)):
            let chars = Array(s)
            let k = i < 0 ? chars.count + i : i
            return chars.indices.contains(k) ? .string(String(chars[k])) : .undefined
        case (_, .string(let key)): return base[key]
        default: return .undefined
        }
    }

    private mutating func call(_ callee: Expression, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        if case .attribute(let base, let method) = callee {
            let receiver = try eval(base)
            if case .undefined = receiver { throw TemplateError("'undefined' has no attribute '\(method)'") }
            if case .object = receiver, case .macro = receiver[method] {} else if let result = try Builtins.method(receiver, method, args, kwargs) {
                return result
            }
        }
        if case .name(let name) = callee, case .builtin(let global) = lookup(name) {
            return try Builtins.global(global, args, kwargs)
        }
        guard case .macro(let macro) = try eval(callee) else { throw TemplateError("\(callee) is not callable") }
        var scope: [String: Value] = [:]
        for (k, (name, defaultValue)) in macro.parameters.enumerated() {
            if let kw = kwargs.first(where: { $0.0 == name }) {
                scope[name] = kw.1
            } else if k < args.count {
                scope[name] = args[k]
            } else {
                scope[name] = try defaultValue.map { try eval($0) } ?? .undefined
            }
        }
        scopes.append(scope)
        defer { scopes.removeLast() }
        var out = ""
        _ = try execute(macro.body, into: &out)
        return .string(out)
    }
}

extension Value {
    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array(_, let isTuple): return isTuple ? "tuple" : "list"
        case .object: return "dict"
        case .namespace: return "Namespace"
        case .macro: return "Macro"
        case .builtin: return "function"
        }
    }
}
