/// Per-request ids (completion ids, the proxy's request ids): 128 random bits as 32 lowercase hex digits, as vLLM's
/// are. From the system generator (getrandom: no file), where Foundation's `UUID()` opens, reads and closes
/// /dev/urandom on Linux for every id.
public enum RandomID {
    public static func hex128() -> String {
        var generator = SystemRandomNumberGenerator()
        return hex(generator.next()) + hex(generator.next())
    }

    /// 16 hex digits, zero-padded.
    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
