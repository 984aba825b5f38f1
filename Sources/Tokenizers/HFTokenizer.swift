import Foundation
import ModelFiles

extension BPETokenizer {
    /// Builds the tokenizer of a Hugging Face folder: `tokenizer.json` (byte-level BPE), special tokens and BOS from
    /// `tokenizer_config.json`, end-of-sequence ids from it and `generation_config.json` (an int or a list).
    public convenience init(huggingFaceDirectory directory: String) throws(ModelFileError) {
        let path = directory + "/tokenizer.json"
        let json = try Self.readJSON(path)
        guard let model = json["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE",
              let vocab = model["vocab"] as? [String: Int] else {
            throw .unsupported(path: path, field: "model", "only byte-level BPE models are supported")
        }
        let family: BPETokenizer.Family
        let pre: PreTokenizer
        if (model["byte_fallback"] as? Bool) == true {
            // SentencePiece BPE as Llama 2 / Mistral ship it: Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer; or,
            // in newer conversions, no normalizer and a Metaspace pre-tokenizer.
            let unknown = (model["unk_token"] as? String).flatMap { vocab[$0] }
            let normalizer = json["normalizer"].flatMap { $0 is NSNull ? nil : $0 }
            let preTokenizer = json["pre_tokenizer"].flatMap { $0 is NSNull ? nil : $0 }
            if Self.isMetaspaceNormalizer(normalizer), preTokenizer == nil {
                (family, pre) = (.sentencePiece(unknownTokenID: unknown, prefix: .everySegment), .gpt2)
            } else if normalizer == nil, let metaspace = Self.metaspace(preTokenizer) {
                (family, pre) = (.sentencePiece(unknownTokenID: unknown, prefix: metaspace), .gpt2)
            } else {
                throw .unsupported(path: path, field: normalizer == nil ? "pre_tokenizer" : "normalizer",
                                   "byte-fallback BPE is supported with the Prepend(▁) + Replace(' ', ▁) normalizer and no "
                                   + "pre-tokenizer, or with no normalizer and a Metaspace(▁) pre-tokenizer")
            }
        } else {
            var nfc = false
            if let normalizer = json["normalizer"] as? [String: Any] {
                guard normalizer["type"] as? String == "NFC" else {
                    throw .unsupported(path: path, field: "normalizer", "\(normalizer["type"] ?? "?") (NFC is supported)")
                }
                nfc = true
            }
            (family, pre) = (.byteLevel(nfc: nfc), try Self.preTokenizer(json["pre_tokenizer"], path: path))
        }
        var merges: [BPETokenizer.Merge] = []
        for (i, m) in ((model["merges"] as? [Any]) ?? []).enumerated() {
            if let s = m as? String, let merge = BPETokenizer.Merge(spelled: s, rank: i) {
                merges.append(merge)
            } else if let pair = m as? [String], pair.count == 2 {
                merges.append(BPETokenizer.Merge(pair[0], pair[1], rank: i))
            } else {
                throw .malformed(path: path, field: "model.merges[\(i)]", "neither \"a b\" nor [\"a\", \"b\"]")
            }
        }
        var byID: [Int: String] = [:]
        for (token, id) in vocab {
            guard id >= 0, id < 1 << 24 else { throw .malformed(path: path, field: "model.vocab", "id \(id)") }
            byID[id] = token
        }
        var specials = Set<Int>()
        for case let added as [String: Any] in (json["added_tokens"] as? [Any]) ?? [] {
            guard let id = added["id"] as? Int, let content = added["content"] as? String, id >= 0, id < 1 << 24 else {
                throw .malformed(path: path, field: "added_tokens", "entry without id and content")
            }
            byID[id] = content
            specials.insert(id)  // added tokens are matched whole in text, special or not (as HF does)
        }
        let count = (byID.keys.max() ?? -1) + 1
        guard count > 0, byID.count == count else {
            throw .malformed(path: path, field: "model.vocab", "ids are not 0..<\(count) without gaps")
        }
        let tokens = (0..<count).map { byID[$0]! }
        let config = (try? Self.readJSON(directory + "/tokenizer_config.json")) ?? [:]
        let idOf = Dictionary(tokens.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        func tokenID(_ value: Any?) -> Int? {
            if let s = value as? String { return idOf[s] }
            if let o = value as? [String: Any], let s = o["content"] as? String { return idOf[s] }
            return nil
        }
        var eos = Set<Int>()
        let ownEOS = tokenID(config["eos_token"])
        if let id = ownEOS { eos.insert(id) }
        if let generation = try? Self.readJSON(directory + "/generation_config.json") {
            if let id = generation["eos_token_id"] as? Int { eos.insert(id) }
            if let ids = generation["eos_token_id"] as? [Int] { eos.formUnion(ids) }
        }
        let bos = tokenID(config["bos_token"])
        var addBOS = config["add_bos_token"] as? Bool
        if addBOS == nil, let post = json["post_processor"] as? [String: Any], post["type"] as? String == "TemplateProcessing",
           let single = post["single"] as? [[String: Any]], let first = single.first {
            addBOS = first["SpecialToken"] != nil
        }
        do {
            try self.init(Specification(tokens: tokens, merges: merges, specialTokenIDs: specials, family: family, preTokenizer: pre,
                                        bosTokenID: bos, eosTokenIDs: eos, eosTokenID: ownEOS, addBOS: addBOS ?? false))
        } catch {
            throw .malformed(path: path, field: "model.merges", "\(error)")
        }
    }

    /// The pre-tokenizers we implement, recognized from their tokenizer.json description.
    static func preTokenizer(_ value: Any?, path: String) throws(ModelFileError) -> PreTokenizer {
        guard let pre = value as? [String: Any], let type = pre["type"] as? String else {
            throw .unsupported(path: path, field: "pre_tokenizer", "missing (byte-level BPE needs one)")
        }
        if type == "ByteLevel", (pre["use_regex"] as? Bool) ?? true { return .gpt2 }
        if type == "Sequence", let parts = pre["pretokenizers"] as? [[String: Any]], parts.count == 2,
           parts[0]["type"] as? String == "Digits", parts[0]["individual_digits"] as? Bool == true,
           parts[1]["type"] as? String == "ByteLevel", (parts[1]["use_regex"] as? Bool) ?? true {
            return .smollm
        }
        // Llama 3 / Qwen2: Split(their regex, Isolated) then ByteLevel without its own regex.
        if type == "Sequence", let parts = pre["pretokenizers"] as? [[String: Any]], parts.count == 2,
           parts[0]["type"] as? String == "Split", (parts[0]["behavior"] as? String) == "Isolated",
           (parts[0]["invert"] as? Bool) != true,
           let pattern = (parts[0]["pattern"] as? [String: Any])?["Regex"] as? String,
           parts[1]["type"] as? String == "ByteLevel", (parts[1]["use_regex"] as? Bool) == false {
            if pattern == Self.llama3Pattern { return .llama3 }
            if pattern == Self.qwen2Pattern { return .qwen2 }
        }
        let description = (try? JSONSerialization.data(withJSONObject: pre, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? type
        throw .unsupported(path: path, field: "pre_tokenizer", String(description.prefix(200)))
    }

    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Sequence[Prepend("▁"), Replace(" ", "▁")] (either order of listing is not accepted: the order matters).
    static func isMetaspaceNormalizer(_ value: Any?) -> Bool {
        guard let n = value as? [String: Any], n["type"] as? String == "Sequence",
              let parts = n["normalizers"] as? [[String: Any]], parts.count == 2 else { return false }
        let prepend = parts[0]["type"] as? String == "Prepend" && parts[0]["prepend"] as? String == "\u{2581}"
        let replace = parts[1]["type"] as? String == "Replace" && (parts[1]["pattern"] as? [String: Any])?["String"] as? String == " "
            && parts[1]["content"] as? String == "\u{2581}"
        return prepend && replace
    }

    /// A Metaspace(▁) pre-tokenizer: its prepend scheme (older files say `add_prefix_space` instead) and `split`.
    static func metaspace(_ value: Any?) -> BPETokenizer.SpacePrefix? {
        guard let m = value as? [String: Any], m["type"] as? String == "Metaspace",
              (m["replacement"] as? String ?? "\u{2581}") == "\u{2581}" else { return nil }
        let scheme: BPETokenizer.MetaspaceScheme?
        if let name = m["prepend_scheme"] as? String {
            scheme = BPETokenizer.MetaspaceScheme(rawValue: name)
        } else {
            scheme = (m["add_prefix_space"] as? Bool ?? true) ? .always : .never
        }
        return scheme.map { .metaspace($0, split: m["split"] as? Bool ?? true) }
    }

    static func readJSON(_ path: String) throws(ModelFileError) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, "cannot read") }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .malformed(path: path, field: "(file)", "not a JSON object")
        }
        return json
    }
}

/// The chat template of a Hugging Face folder: `tokenizer_config.json`'s `chat_template` (a string, or a list of
/// named templates of which `default` is used), else `chat_template.jinja`.
public enum HFChatTemplate {
    public static func load(directory: String) throws(ModelFileError) -> String? {
        let configPath = directory + "/tokenizer_config.json"
        if let config = try? BPETokenizer.readJSON(configPath) {
            if let s = config["chat_template"] as? String { return s }
            if let list = config["chat_template"] as? [[String: Any]] {
                let named = list.first { $0["name"] as? String == "default" } ?? list.first
                guard let template = named?["template"] as? String else {
                    throw .malformed(path: configPath, field: "chat_template", "named list without a 'template'")
                }
                return template
            }
        }
        let file = directory + "/chat_template.jinja"
        if FileManager.default.fileExists(atPath: file) {
            guard let data = FileManager.default.contents(atPath: file) else { throw .io(path: file, "cannot read") }
            return String(decoding: data, as: UTF8.self)
        }
        return nil
    }
}
