import Foundation

/// One request of a serving benchmark: a prompt (text) and how many tokens to ask for.
public struct BenchRequest: Sendable {
    public var prompt: String
    public var outputTokens: Int
}

/// The datasets of `vllm bench serve` that make sense offline: random text of a given length, prompts sharing long
/// prefixes (what prefix caching and KV transfer help), or a JSONL file of `{"prompt": ..., "output_len": ...}`.
public enum BenchDataset: Sendable {
    case random
    case prefixRepetition(prefixLength: Int, prefixes: Int)
    case file(String)

    public init(_ text: String, prefixLength: Int, prefixes: Int) throws {
        switch text {
        case "random": self = .random
        case "prefix-repetition": self = .prefixRepetition(prefixLength: prefixLength, prefixes: prefixes)
        default:
            guard text.hasSuffix(".jsonl") else { throw WorkloadError("--dataset: random, prefix-repetition or FILE.jsonl") }
            self = .file(text)
        }
    }

    /// Common English words: for byte-level BPE vocabularies each is one token with its leading space, so
    /// `inputLength` words is close to `inputLength` prompt tokens (the report shows the served counts).
    static let words = """
        time year people way day man thing woman life child world school state family student group country problem hand \
        part place case week company system program question work government number night point home water room mother \
        area money story fact month lot right study book eye job word business issue side kind head house service friend \
        father power hour game line end member law car city community name president team minute idea kid body information \
        back parent face others level office door health person art war history party result change morning reason research
        """.split(separator: " ").map(String.init)

    public func requests(count: Int, inputLength: Int, outputLength: Int, seed: UInt64) throws -> [BenchRequest] {
        var rng = SplitMix(seed: seed)
        func text(_ n: Int) -> String {
            (0..<n).map { _ in Self.words[Int(rng.next() % UInt64(Self.words.count))] }.joined(separator: " ")
        }
        switch self {
        case .random:
            return (0..<count).map { _ in BenchRequest(prompt: text(inputLength), outputTokens: outputLength) }
        case .prefixRepetition(let prefixLength, let prefixes):
            let shared = (0..<max(1, prefixes)).map { _ in text(prefixLength) }
            return (0..<count).map { i in
                BenchRequest(prompt: shared[i % shared.count] + " " + text(max(1, inputLength - prefixLength)), outputTokens: outputLength)
            }
        case .file(let path):
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            var out: [BenchRequest] = []
            for (n, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let prompt = object["prompt"] as? String else {
                    throw WorkloadError("\(path):\(n + 1): expected {\"prompt\": \"...\", \"output_len\": N}")
                }
                out.append(BenchRequest(prompt: prompt, outputTokens: object["output_len"] as? Int ?? outputLength))
                if out.count == count { break }
            }
            guard !out.isEmpty else { throw WorkloadError("\(path): no prompts") }
            return out
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Exponential with the given rate (Poisson arrivals).
    mutating func exponential(rate: Double) -> Double {
        let u = (Double(next() >> 11) + 0.5) / Double(1 << 53)
        return -log(u) / rate
    }
}

public struct WorkloadError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
