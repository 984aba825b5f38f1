import Foundation

/// What Linux's /proc says about a process: its CPU time, its children, whether it still runs. Nil or empty where
/// /proc is not there. Used to time a benchmark's servers by CPU (steadier than throughput on a shared machine) and
/// to check that a command's children are gone.
public enum ProcessTable {
    /// CPU seconds (user + system, all threads) used so far by `pid` and, with `children`, by its direct children
    /// alive now (nginx's workers).
    public static func cpuSeconds(_ pid: Int32, children: Bool = false) -> Double? {
        guard var ticks = ticks(pid) else { return nil }
        if children { ticks += self.children(of: pid).compactMap { Self.ticks($0) }.reduce(0, +) }
        return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The direct children of `parent`.
    public static func children(of parent: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in statFields(pid).map { $0.count > 1 && $0[1] == "\(parent)" } ?? false }
    }

    /// Whether `pid` exists and has not exited (an exited child not yet reaped is a zombie, and still has an entry).
    public static func isRunning(_ pid: Int32) -> Bool {
        guard let state = statFields(pid)?.first else { return false }
        return state != "Z" && state != "X"
    }

    /// utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat).
    static func ticks(_ pid: Int32) -> Int? {
        guard let fields = statFields(pid), fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// The fields of /proc/PID/stat from the third (the state) on: those after the command name, which may hold
    /// spaces and parentheses itself.
    static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }
}
