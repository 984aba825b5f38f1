/// Tensor element types of GGUF files (ggml's numbering) and their block layout.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q8_0 = 8
    case bf16 = 30

    /// Elements per block: quantized types pack 32 elements with their scales.
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q8_0: return 32
        }
    }

    /// Bytes per block: q4_0 = f16 scale + 16 nibble bytes; q4_1 = f16 scale + f16 min + 16; q8_0 = f16 scale + 32 int8.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q8_0: return 34
        }
    }

    /// Bytes of `elements` elements, or nil when they do not fill whole blocks or overflow.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockElements == 0 else { return nil }
        let (bytes, overflow) = (elements / blockElements).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}
