/// Byte-level BPE (GPT-2 family: SmolLM2, Llama 3, Qwen2): pre-tokenize, spell each piece's bytes in the byte-level
/// alphabet, then merge adjacent symbols by rank. Special tokens typed in the text are matched longest-first
/// when asked (HF's default).
public final class BPETokenizer: Sendable {
    public let vocabulary: [String]
    public let preTokenizer: PreTokenizer
    public let specialTokenIDs: Set<Int>
    public let bosTokenID: Int?
    public let eosTokenIDs: Set<Int>
    public let addBOS: Bool

    private let idOf: [String: Int]
    /// (left id, right id) → (rank, merged id), packed as one key.
    private let merges: [UInt64: (rank: Int32, merged: Int32)]
    /// The id of each byte's one-character token; -1 where the vocabulary has none (such bytes are dropped, as HF
    /// does for a BPE model with neither an unknown token nor byte fallback).
    private let byteIDs: [Int32]
    /// Special tokens by their text, longest first.
    private let specialsByLength: [(text: [UInt8], id: Int)]

    public struct Specification: Sendable {
        public var tokens: [String]
        public var merges: [String]
        public var specialTokenIDs: Set<Int>
        public var preTokenizer: PreTokenizer
        public var bosTokenID: Int?
        public var eosTokenIDs: Set<Int>
        public var addBOS: Bool

        public init(tokens: [String], merges: [String], specialTokenIDs: Set<Int>, preTokenizer: PreTokenizer,
                    bosTokenID: Int?, eosTokenIDs: Set<Int>, addBOS: Bool) {
            (self.tokens, self.merges, self.specialTokenIDs, self.preTokenizer) = (tokens, merges, specialTokenIDs, preTokenizer)
            (self.bosTokenID, self.eosTokenIDs, self.addBOS) = (bosTokenID, eosTokenIDs, addBOS)
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
        preTokenizer = spec.preTokenizer
        specialTokenIDs = spec.specialTokenIDs
        bosTokenID = spec.bosTokenID
        eosTokenIDs = spec.eosTokenIDs
        addBOS = spec.addBOS
        var idOf: [String: Int] = [:]
        idOf.reserveCapacity(spec.tokens.count)
        for (id, token) in spec.tokens.enumerated() where idOf[token] == nil { idOf[token] = id }
        self.idOf = idOf
        var byteIDs: [Int32] = []
        for b in 0..<256 {
            byteIDs.append(idOf[String(ByteLevel.byteToScalar[b])].map(Int32.init) ?? -1)
        }
        self.byteIDs = byteIDs
        var merges: [UInt64: (Int32, Int32)] = [:]
        merges.reserveCapacity(spec.merges.count)
        for (rank, merge) in spec.merges.enumerated() {
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, let l = idOf[String(parts[0])], let r = idOf[String(parts[1])],
                  let m = idOf[String(parts[0]) + String(parts[1])]
            else { throw .badMerge(index: rank, merge) }
            let key = UInt64(l) << 32 | UInt64(r)
            if merges[key] == nil { merges[key] = (Int32(rank), Int32(m)) }
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
            for segment in splitOnSpecials(text) {
                switch segment {
                case .special(let id): ids.append(id)
                case .text(let t): encodePlain(t, into: &ids)
                }
            }
        } else {
            encodePlain(Substring(text), into: &ids)
        }
        return ids
    }

    /// The text of `ids` (special tokens included as their text); invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        String(decoding: bytes(of: skipSpecialTokens ? ids.filter { !specialTokenIDs.contains($0) } : ids), as: UTF8.self)
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
        if specialTokenIDs.contains(id) {
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

    private func encodePlain(_ text: Substring, into ids: inout [Int]) {
        var symbols: [Int32] = []
        for piece in preTokenizer.split(String(text)) {
            symbols.removeAll(keepingCapacity: true)
            for b in piece.utf8 { symbols.append(byteIDs[Int(b)]) }
            mergeInPlace(&symbols)
            for s in symbols where s >= 0 { ids.append(Int(s)) }
        }
    }

    /// Repeatedly merges the adjacent pair of lowest rank (pieces are short: quadratic is fine and allocation-free).
    private func mergeInPlace(_ symbols: inout [Int32]) {
        while symbols.count > 1 {
            var bestRank = Int32.max
            var bestAt = -1
            var bestMerged: Int32 = 0
            for k in 0..<symbols.count - 1 {
                let key = UInt64(UInt32(symbols[k])) << 32 | UInt64(UInt32(symbols[k + 1]))
                if let m = merges[key], m.rank < bestRank {
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
