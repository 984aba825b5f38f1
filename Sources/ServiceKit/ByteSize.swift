/// A byte count parsed from a human-readable size, as operators write them in flags and configs.
///
/// `20GiB`, `512MiB`, `4KiB` are binary; `20GB`, `20g`, `1k` decimal; `20G`, `1K` binary, following vLLM's
/// convention that an upper-case single-letter suffix is binary. A plain number is bytes; fractions are allowed.
public struct ByteSize: Sendable, Hashable, CustomStringConvertible {
    public var bytes: Int

    public init(bytes: Int) { self.bytes = bytes }

    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case invalid(String)

        public var description: String {
            switch self {
            case .invalid(let s): return "invalid size '\(s)': expected a number with an optional unit like 512MiB, 20GB or 1G"
            }
        }
    }

    private static let units: [(String, Double)] = [
        ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024), ("TiB", 1024 * 1024 * 1024 * 1024),
        ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
        ("K", 1024), ("M", 1024 * 1024), ("G", 1024 * 1024 * 1024), ("T", 1024 * 1024 * 1024 * 1024),
        ("k", 1e3), ("m", 1e6), ("g", 1e9), ("t", 1e12),
        ("B", 1),
    ]

    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingSpaces
        var number = trimmed
        var scale = 1.0
        for (suffix, factor) in Self.units where trimmed.hasSuffix(suffix) {
            number = String(trimmed.dropLast(suffix.count)).trimmingSpaces
            scale = factor
            break
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * scale < Double(Int.max) else {
            throw .invalid(text)
        }
        bytes = Int((value * scale).rounded())
    }

    public var description: String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes)B" }
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? "\(Int(rounded))\(units[unit])" : "\(rounded)\(units[unit])"
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s.removeFirst() }
        while s.last?.isWhitespace == true { s.removeLast() }
        return String(s)
    }
}
