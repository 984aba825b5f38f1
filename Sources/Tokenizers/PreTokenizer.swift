/// Splits text into the pieces BPE runs on. Hand-written scanners over Unicode scalars: they do what the reference
/// regexes do, at memory speed (NSRegularExpression is ~3 MB/s on these patterns).
public enum PreTokenizer: Sendable, Equatable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// SmolLM: every numeric character on its own first (HF `Digits(individual_digits)`), then GPT-2 on the rest.
    case smollm
    /// Llama 3 (llama.cpp `llama-bpe`): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// Qwen2: Llama 3's pattern with single digits (`\p{N}`); the tokenizer applies NFC first.
    case qwen2

    /// Chooses the pre-tokenizer named by a GGUF's `tokenizer.ggml.pre`.
    public init?(ggufName: String) {
        switch ggufName {
        case "gpt-2", "gpt2", "default": self = .gpt2
        case "smollm": self = .smollm
        case "llama-bpe", "llama3", "llama-v3": self = .llama3
        case "qwen2": self = .qwen2
        default: return nil
        }
    }

    /// The pieces of `text`, as ranges of its unicode scalars.
    public func split(_ text: String) -> [Substring] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [Substring] = []
        var indices: [String.Index] = []
        indices.reserveCapacity(scalars.count + 1)
        var i = text.unicodeScalars.startIndex
        while i < text.unicodeScalars.endIndex {
            indices.append(i)
            text.unicodeScalars.formIndex(after: &i)
        }
        indices.append(text.unicodeScalars.endIndex)
        func emit(_ a: Int, _ b: Int) { pieces.append(text[indices[a]..<indices[b]]) }
        switch self {
        case .gpt2:
            Self.gpt2(scalars, 0, scalars.count, emit)
        case .smollm:
            var start = 0
            for (k, s) in scalars.enumerated() where s.isNumber {
                Self.gpt2(scalars, start, k, emit)
                emit(k, k + 1)
                start = k + 1
            }
            Self.gpt2(scalars, start, scalars.count, emit)
        case .llama3:
            Self.llama3(scalars, maxDigits: 3, emit)
        case .qwen2:
            Self.llama3(scalars, maxDigits: 1, emit)
        }
        return pieces
    }

    /// GPT-2's pattern over scalars[from..<to], calling `emit` with each piece's bounds.
    static func gpt2(_ s: [Unicode.Scalar], _ from: Int, _ to: Int, _ emit: (Int, Int) -> Void) {
        var i = from
        while i < to {
            let c = s[i]
            // Contractions (case-sensitive, as in the reference pattern).
            if c == "'" && i + 1 < to {
                let n = s[i + 1]
                if n == "s" || n == "t" || n == "m" || n == "d" {
                    emit(i, i + 2); i += 2; continue
                }
                if i + 2 < to {
                    let pair = (n, s[i + 2])
                    if pair == ("r", "e") || pair == ("v", "e") || pair == ("l", "l") {
                        emit(i, i + 3); i += 3; continue
                    }
                }
            }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional ASCII space, then a run of one class.
            let lead = (c == " " && i + 1 < to) ? i + 1 : i
            let kind = s[lead].charClass
            if kind != .space {
                var j = lead + 1
                while j < to && s[j].charClass == kind { j += 1 }
                emit(i, j); i = j; continue
            }
            // Whitespace: `\s+(?!\S)` leaves the last space of a run to prefix the next word; else `\s+`.
            var j = i
            while j < to && s[j].charClass == .space { j += 1 }
            if j < to && j - i >= 2 { j -= 1 }
            emit(i, j)
            i = j
        }
    }
}

extension PreTokenizer {
    /// Llama 3's pattern (Qwen2's with `maxDigits` 1), alternatives tried in order at each position as the regex does.
    static func llama3(_ s: [Unicode.Scalar], maxDigits: Int, _ emit: (Int, Int) -> Void) {
        let to = s.count
        func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
        var i = 0
        while i < to {
            let c = s[i]
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if c == "'" && i + 1 < to {
                let n = Character(s[i + 1]).lowercased()
                if n == "s" || n == "t" || n == "m" || n == "d" { emit(i, i + 2); i += 2; continue }
                if i + 2 < to {
                    let pair = n + Character(s[i + 2]).lowercased()
                    if pair == "re" || pair == "ve" || pair == "ll" { emit(i, i + 3); i += 3; continue }
                }
            }
            let kind = c.charClass
            // [^\r\n\p{L}\p{N}]?\p{L}+
            var lead = i
            if kind != .letter && kind != .number && !isNewline(c) && i + 1 < to && s[i + 1].charClass == .letter { lead = i + 1 }
            if s[lead].charClass == .letter {
                var j = lead + 1
                while j < to && s[j].charClass == .letter { j += 1 }
                emit(i, j); i = j; continue
            }
            // \p{N}{1,maxDigits}
            if kind == .number {
                var j = i + 1
                while j < to && j - i < maxDigits && s[j].charClass == .number { j += 1 }
                emit(i, j); i = j; continue
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let start = (c == " " && i + 1 < to && s[i + 1].charClass == .other) ? i + 1 : i
            if s[start].charClass == .other {
                var j = start + 1
                while j < to && s[j].charClass == .other { j += 1 }
                while j < to && isNewline(s[j]) { j += 1 }
                emit(i, j); i = j; continue
            }
            // Whitespace: `\s*[\r\n]+` up to the run's last newline; else `\s+(?!\S)` / `\s+` as in GPT-2.
            var j = i
            while j < to && s[j].charClass == .space { j += 1 }
            if let last = (i..<j).last(where: { isNewline(s[$0]) }) {
                emit(i, last + 1); i = last + 1; continue
            }
            if j < to && j - i >= 2 { j -= 1 }
            emit(i, j)
            i = j
        }
    }
}

enum CharClass { case letter, number, space, other }

extension Unicode.Scalar {
    var isNumber: Bool {
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    var charClass: CharClass {
        if value < 128 {
            switch value {
            case 0x41...0x5A, 0x61...0x7A: return .letter
            case 0x30...0x39: return .number
            case 0x09...0x0D, 0x20: return .space
            default: return .other
            }
        }
        if properties.isWhitespace { return .space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }
}
