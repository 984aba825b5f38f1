import Foundation

/// CPU time (user + system, all threads) that processes have used so far, from /proc (Linux): the cost per request of
/// a server under load, which on a shared machine is steadier than its throughput. Nil where /proc is not there.
public enum ProcessCPU {
    /// Seconds used by `pid` and, with `children`, by its direct children (nginx's workers), alive now.
    public static func seconds(_ pid: Int32, children: Bool = false) -> Double? {
        guard var ticks = ticks(pid) else { return nil }
        if children { ticks += childPIDs(of: pid).compactMap { Self.ticks($0) }.reduce(0, +) }
        return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat; the fields after the name's closing paren).
    static func ticks(_ pid: Int32) -> Int? {
        guard let fields = statFields(pid), fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// The fields of /proc/PID/stat after the command name, which may hold spaces and parentheses itself.
    static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    static func childPIDs(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in statFields(pid).map { $0.count > 1 && $0[1] == "\(parent)" } ?? false }
    }
}
