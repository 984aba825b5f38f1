/// Template → text / `{{ output }}` / `{% statement %}` pieces, applying whitespace control as transformers'
/// environment does: `trim_blocks` (drop the newline after a block or comment tag), `lstrip_blocks` (drop the
/// indentation before a block tag alone on its line) and explicit `-` markers.
enum Piece: Equatable {
    case text(String)
    case output(String)
    case statement(String)
}

public struct TemplateError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

enum Lexer {
    static func pieces(_ source: String) throws -> [Piece] {
        let s = Array(source.unicodeScalars)
        var pieces: [Piece] = []
        var text = String.UnicodeScalarView()
        var i = 0
        var trimNextNewline = false
        var stripNextWhitespace = false
        var runStartsAtLineStart = true  // the pending text run begins at a line start of the source
        func flushText() {
            if !text.isEmpty { pieces.append(.text(String(text))) }
            text = String.UnicodeScalarView()
        }
        while i < s.count {
            let opens = i + 1 < s.count && s[i] == "{" && (s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#")
            if !opens {
                if stripNextWhitespace && s[i].properties.isWhitespace {
                    if s[i] == "\n" { runStartsAtLineStart = true }
                    i += 1
                    continue
                }
                stripNextWhitespace = false
                if trimNextNewline {
                    trimNextNewline = false
                    if s[i] == "\n" { i += 1; runStartsAtLineStart = true; continue }
                }
                text.append(s[i])
                i += 1
                continue
            }
            stripNextWhitespace = false
            trimNextNewline = false
            let kind = s[i + 1]
            let close: Unicode.Scalar = kind == "{" ? "}" : kind == "%" ? "%" : "#"
            var j = i + 2
            let stripBefore = j < s.count && s[j] == "-"
            let keepBefore = j < s.count && s[j] == "+"
            if stripBefore || keepBefore { j += 1 }
            // Find the closing marker, skipping quoted strings and balanced braces inside expressions (a dict literal
            // may end in "}}" before the tag does, as jinja2's lexer allows).
            var k = j
            var quote: Unicode.Scalar?
            var braces = 0
            while k + 1 < s.count {
                if let q = quote {
                    if s[k] == "\\" { k += 2; continue }
                    if s[k] == q { quote = nil }
                } else if kind != "#" && (s[k] == "'" || s[k] == "\"") {
                    quote = s[k]
                } else if kind != "#" && s[k] == "{" {
                    braces += 1
                } else if kind != "#" && s[k] == "}" && braces > 0 {
                    braces -= 1
                } else if s[k] == close && s[k + 1] == "}" {
                    break
                }
                k += 1
            }
            guard k + 1 < s.count else { throw TemplateError("unclosed tag starting at character \(i)") }
            var bodyEnd = k
            let stripAfter = bodyEnd > j && s[bodyEnd - 1] == "-"
            let keepAfter = kind != "{" && bodyEnd > j && s[bodyEnd - 1] == "+"  // `+%}`: no trim_blocks here
            if stripAfter || keepAfter { bodyEnd -= 1 }
            if stripBefore {
                while let last = text.last, last.properties.isWhitespace { text.removeLast() }
            } else if kind != "{" && !keepBefore {
                // lstrip_blocks: drop spaces/tabs between the start of the line (in the source) and the tag.
                var idx = text.endIndex
                while idx > text.startIndex, text[text.index(before: idx)] == " " || text[text.index(before: idx)] == "\t" {
                    idx = text.index(before: idx)
                }
                let atLineStart = idx > text.startIndex ? text[text.index(before: idx)] == "\n" : runStartsAtLineStart
                if atLineStart { text.removeSubrange(idx..<text.endIndex) }
            }
            flushText()
            let body = String(String.UnicodeScalarView(s[j..<bodyEnd])).trimmingWhitespace
            if kind == "%" && body == "raw" {  // everything up to {% endraw %} is text, tags included
                guard let end = Self.endRaw(s, from: k + 2) else { throw TemplateError("{% raw %} without {% endraw %}") }
                var content = String.UnicodeScalarView(s[(k + 2)..<end.start])
                if stripAfter { while let f = content.first, f.properties.isWhitespace { content.removeFirst() } }
                if end.stripBefore { while let l = content.last, l.properties.isWhitespace { content.removeLast() } }
                if !content.isEmpty { pieces.append(.text(String(content))) }
                i = end.after
                runStartsAtLineStart = false
                if end.stripAfter { stripNextWhitespace = true } else if !end.keepAfter { trimNextNewline = true }
                continue
            }
            switch kind {
            case "{": pieces.append(.output(body))
            case "%": pieces.append(.statement(body))
            default: break
            }
            i = k + 2
            runStartsAtLineStart = false
            if stripAfter {
                stripNextWhitespace = true
            } else if kind != "{" && !keepAfter {
                trimNextNewline = true
            }
        }
        flushText()
        return pieces
    }

    /// The first `{% endraw %}` (with optional -/+ markers) at or after `from`.
    static func endRaw(_ s: [Unicode.Scalar], from: Int) -> (start: Int, after: Int, stripBefore: Bool, stripAfter: Bool, keepAfter: Bool)? {
        var i = from
        while i + 1 < s.count {
            defer { i += 1 }
            guard s[i] == "{" && s[i + 1] == "%" else { continue }
            var j = i + 2
            let stripBefore = j < s.count && s[j] == "-"
            if j < s.count && (s[j] == "-" || s[j] == "+") { j += 1 }
            while j < s.count && s[j].properties.isWhitespace { j += 1 }
            guard j + 6 <= s.count, String(String.UnicodeScalarView(s[j..<j + 6])) == "endraw" else { continue }
            j += 6
            while j < s.count && s[j].properties.isWhitespace { j += 1 }
            let stripAfter = j < s.count && s[j] == "-", keepAfter = j < s.count && s[j] == "+"
            if stripAfter || keepAfter { j += 1 }
            guard j + 1 < s.count, s[j] == "%", s[j + 1] == "}" else { continue }
            return (i, j + 2, stripBefore, stripAfter, keepAfter)
        }
        return nil
    }

}

extension String {
    var trimmingWhitespace: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }
}
