/// Applies stop strings to streamed text: text is released only once no stop string can start inside it, and
/// generation ends at the first stop string, which is never emitted (not even in part).
struct StopMatcher {
    let stops: [String]
    private var held = ""
    private let longest: Int

    init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
        longest = self.stops.map(\.count).max() ?? 0
    }

    /// Adds generated text; returns what may be shown now and whether a stop string was hit.
    mutating func push(_ text: String) -> (text: String, stopped: Bool) {
        guard !stops.isEmpty else { return (text, false) }
        held += text
        // The earliest occurrence of any stop string ends the output there.
        var cut: String.Index?
        for stop in stops {
            if let r = held.range(of: stop), cut.map({ r.lowerBound < $0 }) ?? true { cut = r.lowerBound }
        }
        if let cut {
            let out = String(held[..<cut])
            held = ""
            return (out, true)
        }
        // Hold back the longest tail that is a prefix of some stop string.
        var keep = min(longest - 1, held.count)
        while keep > 0 {
            let tail = held.suffix(keep)
            if stops.contains(where: { $0.hasPrefix(tail) }) { break }
            keep -= 1
        }
        let splitAt = held.index(held.endIndex, offsetBy: -keep)
        let out = String(held[..<splitAt])
        held = String(held[splitAt...])
        return (out, false)
    }

    /// At the end of generation, whatever was held back.
    mutating func flush() -> String {
        defer { held = "" }
        return held
    }
}
