import Crypto

/// LMCache's (demo era) chunk keys: tokens split into `chunkSize` chunks, the last partial one included;
/// hash_k = sha256(hex(hash_{k−1}) + int64-LE bytes of chunk k), hash_{−1} = "", and the key
/// `vllm@<model>@<world size>@<rank>@<hash>`.
public struct ChunkKeys: Sendable {
    public let modelName: String
    public let chunkSize: Int
    public let worldSize: Int
    public let rank: Int

    public init(modelName: String, chunkSize: Int, worldSize: Int = 1, rank: Int = 0) {
        self.modelName = modelName
        self.chunkSize = chunkSize
        self.worldSize = worldSize
        self.rank = rank
    }

    /// The hex hash of each chunk of `tokens`, in order.
    public func hashes(_ tokens: [Int]) -> [String] {
        var out: [String] = []
        var previous = ""
        var start = 0
        var bytes: [UInt8] = []
        while start < tokens.count {
            let end = min(start + chunkSize, tokens.count)
            bytes.removeAll(keepingCapacity: true)
            bytes.append(contentsOf: previous.utf8)
            for t in tokens[start..<end] {
                withUnsafeBytes(of: Int64(t).littleEndian) { bytes.append(contentsOf: $0) }
            }
            previous = SHA256.hash(data: bytes).map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined()
            out.append(previous)
            start = end
        }
        return out
    }

    public func key(_ hash: String) -> String { "vllm@\(modelName)@\(worldSize)@\(rank)@\(hash)" }

    /// The token range of chunk `k` of a `count`-token prompt.
    public func range(chunk k: Int, of count: Int) -> Range<Int> { k * chunkSize..<min((k + 1) * chunkSize, count) }
}
