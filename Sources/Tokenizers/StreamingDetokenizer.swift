/// Turns generated ids into text as they come, never emitting half a UTF-8 character: bytes of an incomplete
/// character wait for the next token.
public struct StreamingDetokenizer {
    private let tokenizer: BPETokenizer
    private let skipSpecialTokens: Bool
    private var pending: [UInt8] = []

    /// `skipSpecialTokens`: special tokens (an end-of-turn marker, say) add no text, as in vLLM's default output.
    public init(tokenizer: BPETokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text that became complete with `id` (possibly empty).
    public mutating func append(_ id: Int) -> String {
        if skipSpecialTokens && tokenizer.specialTokenIDs.contains(id) { return "" }
        tokenizer.appendBytes(of: id, to: &pending)
        let complete = Self.completePrefixLength(pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Whatever is left at the end of generation (an incomplete character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a UTF-8 sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var i = bytes.count
        var back = 0
        // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
        while i > 0 && back < 4 {
            let b = bytes[i - 1]
            if b & 0xC0 != 0x80 {
                let need = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                return back + 1 >= need ? bytes.count : i - 1
            }
            i -= 1
            back += 1
        }
        return bytes.count  // not valid UTF-8 at all: let it through as replacement characters
    }
}
