import Foundation

/// BPE in its two families: byte-level (GPT-2 family: SmolLM2, Llama 3, Qwen2: pre-tokenize, spell each piece's
/// bytes in the byte-level alphabet) and SentencePiece (Llama 2, Mistral: spaces become ▁, a ▁ is prepended, the
/// text is spelled in characters and characters the vocabulary lacks fall back to <0xXX> byte tokens); then
/// adjacent symbols merge by rank. Special tokens typed in the text are matched longest-first when asked (HF's
/// default).
public final class BPETokenizer: Sendable {
    public let vocabulary: [String]
    public let family: Family
    public let preTokenizer: PreTokenizer
    public let specialTokenIDs: Set<Int>
    public let bosTokenID: Int?
    public let eosTokenIDs: Set<Int>
    /// The tokenizer's own end-of-sequence token (tokenizer_config.json's `eos_token`, a GGUF's eos id): what chat
    /// templates see as `eos_token`. `eosTokenIDs` also holds generation_config.json's stop ids.
    public let eosTokenID: Int?
    public let addBOS: Bool

    public enum Family: Sendable, Equatable {
        /// GPT-2's byte-level alphabet; `nfc`: normalize to NFC first (Qwen2).
        case byteLevel(nfc: Bool)
        /// ▁ for spaces, a ▁ prepended as `prefix` says, byte fallback (unknown characters → <0xXX>).
        case sentencePiece(unknownTokenID: Int?, prefix: SpacePrefix = .everySegment)
    }

    /// Where a SentencePiece tokenizer adds the ▁ that stands for a leading space.
    public enum SpacePrefix: Sendable, Equatable {
        /// HF's Prepend("▁") normalizer (Llama 2 / Mistral tokenizer.json; llama.cpp's add_space_prefix): every text
        /// segment between special tokens gets one, even one that starts with a space.
        case everySegment
        /// HF's Metaspace pre-tokenizer (newer conversions): a ▁ only where the segment does not start with one
        /// already; `first` only for the segment at the start of the input, `never` none. `split`: merges stay
        /// within pieces that each start at a ▁.
        case metaspace(MetaspaceScheme, split: Bool)
    }

    public enum MetaspaceScheme: String, Sendable, Equatable {
        case always, first, never
    }

    /// One merge rule: `left` + `right` → their concatenation, applied in increasing `rank`.
    public struct Merge: Sendable {
        public var left: String, right: String, rank: Int
        public init(_ left: String, _ right: String, rank: Int) { (self.left, self.right, self.rank) = (left, right, rank) }

        /// "left right", as tokenizer.json and GGUF files spell merges.
        public init?(spelled: String, rank: Int) {
            let parts = spelled.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            self.init(String(parts[0]), String(parts[1]), rank: rank)
        }
    }

    private let idOf: [String: Int]
    /// (left id, right id) → (rank, merged id), packed as one key.
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    /// The id of each byte's token (its byte-level character, or its <0xXX> fallback token); -1 where the vocabulary
    /// has none (such bytes are dropped, as HF does for a BPE model with neither an unknown token nor byte fallback).
    private let byteIDs: [Int32]
    /// SentencePiece: the byte each <0xXX> token stands for (-1 for other tokens).
    private let fallbackByte: [Int16]
    /// Special tokens by their text, longest first.
    private let specialsByLength: [(text: [UInt8], id: Int)]

    public struct Specification: Sendable {
        public var tokens: [String]
        public var merges: [Merge]
        public var specialTokenIDs: Set<Int>
        public var family: Family
        public var preTokenizer: PreTokenizer
        public var bosTokenID: Int?
        public var eosTokenIDs: Set<Int>
        public var eosTokenID: Int?
        public var addBOS: Bool

        public init(tokens: [String], merges: [Merge], specialTokenIDs: Set<Int>, family: Family = .byteLevel(nfc: false),
                    preTokenizer: PreTokenizer, bosTokenID: Int?, eosTokenIDs: Set<Int>, eosTokenID: Int? = nil, addBOS: Bool) {
            (self.tokens, self.merges, self.specialTokenIDs, self.preTokenizer) = (tokens, merges, specialTokenIDs, preTokenizer)
            (self.family, self.bosTokenID, self.eosTokenIDs, self.addBOS) = (family, bosTokenID, eosTokenIDs, addBOS)
            self.eosTokenID = eosTokenID ?? eosTokenIDs.min()
        }
    }

    public enum BuildError: Error, CustomStringConvertible, Equatable {
        case badMerge(index: Int, String)

        public var description: String {
            switch self {
            case .badMerge(let i, let m): return "merge #\(i) '\(m)' names tokens not in the vocabulary"
            }
        }
    }

    public init(_ spec: Specification) throws(BuildError) {
        vocabulary = spec.tokens
        family = spec.family
        preTokenizer = spec.preTokenizer
        specialTokenIDs = spec.specialTokenIDs
        bosTokenID = spec.bosTokenID
        eosTokenIDs = spec.eosTokenIDs
        eosTokenID = spec.eosTokenID
        addBOS = spec.addBOS
        var idOf: [String: Int] = [:]
        idOf.reserveCapacity(spec.tokens.count)
        for (id, token) in spec.tokens.enumerated() where idOf[token] == nil { idOf[token] = id }
        self.idOf = idOf
        var byteIDs: [Int32] = []
        var fallbackByte = [Int16](repeating: -1, count: spec.family == .byteLevel(nfc: false) || spec.family == .byteLevel(nfc: true) ? 0 : spec.tokens.count)
        for b in 0..<256 {
            switch spec.family {
            case .byteLevel:
                byteIDs.append(idOf[String(ByteLevel.byteToScalar[b])].map(Int32.init) ?? -1)
            case .sentencePiece:
                let id = idOf[Self.fallbackToken(UInt8(b))]
                byteIDs.append(id.map(Int32.init) ?? -1)
                if let id { fallbackByte[id] = Int16(b) }
            }
        }
        self.byteIDs = byteIDs
        self.fallbackByte = fallbackByte
        var merges: [UInt64: (Int32, Int32)] = [:]
        merges.reserveCapacity(spec.merges.count)
        for (index, merge) in spec.merges.enumerated() {
            guard let l = idOf[merge.left], let r = idOf[merge.right], let m = idOf[merge.left + merge.right]
            else { throw .badMerge(index: index, merge.left + " " + merge.right) }
            let key = UInt64(l) << 32 | UInt64(r)
            if merges[key] == nil { merges[key] = (Int32(merge.rank), Int32(m)) }
        }
        self.merges = merges
        specialsByLength = spec.specialTokenIDs.map { (Array(spec.tokens[$0].utf8), $0) }
            .filter { !$0.0.isEmpty }.sorted { $0.0.count > $1.0.count }
    }

    /// Token ids of `text`. `parseSpecial`: special-token text in `text` becomes that token (HF's default; turn it
    /// off for untrusted user content). `addSpecial`: prepend BOS when the model asks for it.
    public func encode(_ text: String, parseSpecial: Bool = true, addSpecial: Bool = false) -> [Int] {
        var ids: [Int] = []
        if addSpecial && addBOS, let bos = bosTokenID { ids.append(bos) }
        if parseSpecial && !specialsByLength.isEmpty {
            for (k, segment) in splitOnSpecials(text).enumerated() {
                switch segment {
                case .special(let id): ids.append(id)
                case .text(let t): encodePlain(t, atStart: k == 0, into: &ids)
                }
            }
        } else {
            encodePlain(Substring(text), atStart: true, into: &ids)
        }
        return ids
    }

    /// The text of `ids` (special tokens included as their text); invalid UTF-8 becomes U+FFFD.
    /// SentencePiece drops the space that stands for the ▁ prepended to the text (HF's `Strip` decoder); the
    /// streaming detokenizer, which continues a prompt, keeps it.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes = bytes(of: skipSpecialTokens ? ids.filter { !specialTokenIDs.contains($0) } : ids)
        if case .sentencePiece(_, let prefix) = family, prefix.addsSpace, bytes.first == 0x20 { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The raw bytes `ids` stand for.
    public func bytes(of ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids { appendBytes(of: id, to: &out) }
        return out
    }

    func appendBytes(of id: Int, to out: inout [UInt8]) {
        guard id >= 0 && id < vocabulary.count else { return }
        let token = vocabulary[id]
        if case .sentencePiece = family {
            if fallbackByte[id] >= 0 {
                out.append(UInt8(fallbackByte[id]))
            } else if specialTokenIDs.contains(id) {
                out += Array(token.utf8)
            } else {
                // ▁ (E2 96 81) stands for a space.
                let utf8 = Array(token.utf8)
                var k = 0
                while k < utf8.count {
                    if utf8[k] == 0xE2 && k + 2 < utf8.count && utf8[k + 1] == 0x96 && utf8[k + 2] == 0x81 {
                        out.append(0x20); k += 3
                    } else {
                        out.append(utf8[k]); k += 1
                    }
                }
            }
        } else if specialTokenIDs.contains(id) {
            out += Array(token.utf8)
        } else if let bytes = ByteLevel.decode(token) {
            out += bytes
        } else {
            out += Array(token.utf8)
        }
    }

    public func id(of token: String) -> Int? { idOf[token] }

    private enum Segment { case special(Int), text(Substring) }

    private func splitOnSpecials(_ text: String) -> [Segment] {
        let utf8 = Array(text.utf8)
        var segments: [Segment] = []
        var plainStart = 0
        var i = 0
        outer: while i < utf8.count {
            for (special, id) in specialsByLength where special[0] == utf8[i] && special.count <= utf8.count - i {
                if utf8[i..<i + special.count].elementsEqual(special) {
                    if plainStart < i { segments.append(.text(substring(text, utf8: plainStart..<i))) }
                    segments.append(.special(id))
                    i += special.count
                    plainStart = i
                    continue outer
                }
            }
            i += 1
        }
        if plainStart < utf8.count { segments.append(.text(substring(text, utf8: plainStart..<utf8.count))) }
        return segments
    }

    private func substring(_ text: String, utf8 range: Range<Int>) -> Substring {
        let start = text.utf8.index(text.utf8.startIndex, offsetBy: range.lowerBound)
        let end = text.utf8.index(start, offsetBy: range.count)
        return text[start..<end]
    }

    static func fallbackToken(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x" + (hex.count == 1 ? "0" + hex : hex) + ">"
    }

    /// `atStart`: the segment begins the input (Metaspace's `first` scheme prefixes only that one).
    private func encodePlain(_ text: Substring, atStart: Bool, into ids: inout [Int]) {
        var symbols: [Int32] = []
        switch family {
        case .sentencePiece(let unknown, let prefix):
            // Spaces become ▁ (HF's Replace normalizer or Metaspace), a ▁ is prepended as `prefix` says, then
            // characters (or their fallback bytes) are merged: the whole segment at once, or piece by piece.
            guard !text.isEmpty else { return }
            let marker: Unicode.Scalar = "\u{2581}"
            var scalars = text.unicodeScalars.map { $0 == " " ? marker : $0 }
            var split = false
            switch prefix {
            case .everySegment:
                scalars.insert(marker, at: 0)
            case .metaspace(let scheme, let splits):
                if scalars.first != marker && (scheme == .always || scheme == .first && atStart) { scalars.insert(marker, at: 0) }
                split = splits
            }
            var start = 0
            while start < scalars.count {  // a piece runs up to the next ▁ when splitting, else to the end
                var end = start + 1
                while split && end < scalars.count && scalars[end] != marker { end += 1 }
                if !split { end = scalars.count }
                symbols.removeAll(keepingCapacity: true)
                var lastWasUnknown = false
                for scalar in scalars[start..<end] {
                    if let id = idOf[String(scalar)] {
                        symbols.append(Int32(id)); lastWasUnknown = false
                        continue
                    }
                    let bytes = Array(String(scalar).utf8)
                    if bytes.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                        for b in bytes { symbols.append(byteIDs[Int(b)]) }
                        lastWasUnknown = false
                    } else if let unknown, !lastWasUnknown {  // consecutive unknowns fuse into one (fuse_unk)
                        symbols.append(Int32(unknown)); lastWasUnknown = true
                    }
                }
                merge(&symbols)
                for s in symbols where s >= 0 { ids.append(Int(s)) }
                start = end
            }
            return
        case .byteLevel(let nfc):
            let text = nfc ? Substring(String(text).precomposedStringWithCanonicalMapping) : text
            for piece in preTokenizer.split(String(text)) {
                symbols.removeAll(keepingCapacity: true)
                for b in piece.utf8 { symbols.append(byteIDs[Int(b)]) }
                merge(&symbols)
                for s in symbols where s >= 0 { ids.append(Int(s)) }
            }
        }
    }

    private func rule(_ left: Int32, _ right: Int32) -> (rank: Int32, merged: Int32)? {
        guard left >= 0 && right >= 0 else { return nil }
        return merges[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))]
    }

    /// Merges adjacent symbols, lowest rank first, leftmost first among equals. Short pieces (byte-level words)
    /// scan all pairs per merge; long ones (a SentencePiece text is one piece) use a heap over a linked list.
    private func merge(_ symbols: inout [Int32]) {
        if symbols.count <= 48 { mergeByScanning(&symbols) } else { mergeWithHeap(&symbols) }
    }

    private func mergeWithHeap(_ symbols: inout [Int32]) {
        let n = symbols.count
        var next = Array(1...n), prev = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        // Candidates (rank, left position, left symbol, right symbol); stale ones are skipped when popped.
        var heap = MinHeap<(Int32, Int, Int32, Int32)> { a, b in a.0 != b.0 ? a.0 < b.0 : a.1 < b.1 }
        func push(_ i: Int) {
            let j = next[i]
            guard j < n, let r = rule(symbols[i], symbols[j]) else { return }
            heap.push((r.rank, i, symbols[i], symbols[j]))
        }
        for i in 0..<n - 1 { push(i) }
        while let (_, i, left, right) = heap.pop() {
            guard alive[i], symbols[i] == left, next[i] < n, symbols[next[i]] == right, let r = rule(left, right) else { continue }
            let j = next[i]
            symbols[i] = r.merged
            alive[j] = false
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0 { push(prev[i]) }
            push(i)
        }
        var k = 0
        for i in 0..<n where alive[i] { symbols[k] = symbols[i]; k += 1 }
        symbols.removeLast(n - k)
    }

    /// Repeatedly merges the adjacent pair of lowest rank (pieces are short: quadratic is fine and allocation-free).
    private func mergeByScanning(_ symbols: inout [Int32]) {
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestAt = -1
            var bestMerged: Int32 = 0
            for k in 0..<symbols.count - 1 {
                if let m = rule(symbols[k], symbols[k + 1]), m.rank < bestRank {
                    bestRank = m.rank
                    bestAt = k
                    bestMerged = m.merged
                }
            }
            guard bestAt >= 0 else { return }
            symbols[bestAt] = bestMerged
            symbols.remove(at: bestAt + 1)
        }
    }
}

extension BPETokenizer.SpacePrefix {
    /// Whether a ▁ is ever prepended (decoding then drops the space it stands for at the start).
    var addsSpace: Bool {
        if case .metaspace(.never, _) = self { return false }
        return true
    }
}
