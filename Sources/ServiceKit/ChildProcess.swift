import Foundation
import Synchronization

/// A helper process started by a command (a store or peer for a benchmark), stopped when its owner is done.
public final class ChildProcess: @unchecked Sendable {
    public let process = Process()
    public let name: String

    /// Where a child's output goes.
    public enum Output: Sendable {
        case discard
        case file(String)
        /// Each line to this process's standard output, prefixed (`[prefill-0] ...`).
        case prefixed(String)
    }

    /// Starts `executable` with `arguments` (and `environment` over this process's); output goes to `logFile` when
    /// given, else is discarded.
    public convenience init(name: String, executable: String, arguments: [String], logFile: String? = nil,
                            environment: [String: String] = [:]) throws {
        try self.init(name: name, executable: executable, arguments: arguments, output: logFile.map { .file($0) } ?? .discard,
                      environment: environment)
    }

    public init(name: String, executable: String, arguments: [String], output: Output, environment: [String: String] = [:]) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        var logFile: String?
        if case .file(let path) = output { logFile = path }
        if case .prefixed(let prefix) = output {
            let pipe = Pipe()
            let lines = LinePrefixer(prefix: prefix)
            pipe.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                if data.isEmpty { handle.readabilityHandler = nil }  // end of file
                lines.feed(data)
            }
            process.standardOutput = pipe
            process.standardError = pipe
        } else if let logFile, FileManager.default.createFile(atPath: logFile, contents: nil),
           let handle = FileHandle(forWritingAtPath: logFile) {
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try startWithNoSignalBlocked()
        let pid = process.processIdentifier
        // A child started while stopAllOnSignal's handler stops the others would outlive this process: stop it now.
        let stopping = Self.live.withLock { live in
            live.pids.insert(pid)
            return live.stopping
        }
        if stopping { Foundation.kill(pid, SIGKILL) }
    }

    /// Starts the process from a thread of its own that blocks no signal. A child inherits the signal mask of the
    /// thread that spawns it, and the threads of Swift's concurrency pool (libdispatch's workers) block nearly every
    /// signal: a child started from one would never see SIGTERM unless it unblocked it itself (/bin/sh, sleep and
    /// Python do not), and `stop` would always end in SIGKILL.
    private func startWithNoSignalBlocked() throws {
        final class Outcome: @unchecked Sendable { var result: Result<Void, any Error> = .success(()) }  // the semaphore orders it
        let outcome = Outcome()
        let started = DispatchSemaphore(value: 0)
        Thread { [self] in
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            outcome.result = Result { try process.run() }
            started.signal()
        }.start()
        started.wait()
        try outcome.result.get()
    }

    /// Children started and not yet seen to stop, for `stopAllOnSignal`.
    private static let live = Mutex<(pids: Set<Int32>, stopping: Bool)>(([], false))
    private static let signalSources = Mutex<[any DispatchSourceSignal]>([])

    /// From now on SIGINT and SIGTERM stop this process's children (SIGTERM, then SIGKILL after `grace`) and exit with
    /// 128 + the signal, instead of ending this process alone and leaving them running (a benchmark's servers, which
    /// would keep their ports). For commands that start children without a supervisor of their own.
    public static func stopAllOnSignal(grace: Duration = .seconds(2)) {
        signalSources.withLock { sources in
            guard sources.isEmpty else { return }
            for number in [SIGINT, SIGTERM] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    let pids = live.withLock { live in
                        live.stopping = true
                        return live.pids
                    }
                    for pid in pids { Foundation.kill(pid, SIGTERM) }
                    let deadline = ContinuousClock.now + grace
                    while ContinuousClock.now < deadline && pids.contains(where: ProcessTable.isRunning) {
                        usleep(10_000)
                    }
                    for pid in live.withLock({ $0.pids }) { Foundation.kill(pid, SIGKILL) }
                    // _exit, not exit: exit would run the process's exit handlers and destructors on this thread while
                    // the command's own threads still run.
                    fflush(nil)  // every stdio stream (print's stdout)
                    _exit(128 + number)
                }
                source.resume()
                sources.append(source)
            }
        }
    }

    /// Returns unless stopAllOnSignal's handler is stopping the children, which ends the process itself (128 + the
    /// signal): then waits for it. For the command's own way out, which would otherwise race it with a status of its
    /// own (its children stopped under it, the command fails and exits 1).
    public static func yieldToSignalStop() {
        while live.withLock({ $0.stopping }) { sleep(1) }
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL.
    public func stop(grace: Duration = .seconds(5)) {
        defer { forget() }
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + grace
        while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGKILL, no grace (crash tests).
    public func kill() {
        defer { forget() }
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop(grace: .seconds(1)) }

    private func forget() {
        let pid = process.processIdentifier
        Self.live.withLock { _ = $0.pids.remove(pid) }
    }

    // The async forms below wait without holding a thread of Swift's cooperative pool, which has one thread per core:
    // a pool thread blocked on a child can starve an in-process server that the child is talking to (two such waits
    // on a 2-core machine deadlock).

    /// Waits for the child to exit and returns its status.
    public func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            Thread { [self] in
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }.start()
        }
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL.
    public func stop(grace: Duration = .seconds(5)) async {
        defer { forget() }
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + grace
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        _ = await exitStatus()
    }

    /// SIGKILL, no grace (crash tests).
    public func kill() async {
        defer { forget() }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        _ = await exitStatus()
    }

    /// Waits until something accepts TCP connections on host:port, or the child exits, or `timeout` passes.
    public func waitUntilListening(host: String, port: Int, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try isListening(host: host, port: port) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ChildProcessError.notListening(name: name, port: port)
    }

    /// One probe of the waits for a listener: throws if the child has exited.
    private func isListening(host: String, port: Int) throws -> Bool {
        guard process.isRunning else { throw ChildProcessError.exited(name: name, status: process.terminationStatus) }
        return canConnect(host: host, port: port)
    }

    /// Runs `executable` to completion and returns its exit status and everything it printed (stdout and stderr).
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws
        -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("swiftwise-child-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try ChildProcess(name: (executable as NSString).lastPathComponent, executable: executable,
                                     arguments: arguments, output: .file(log), environment: environment)
        let status = await child.exitStatus()
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    /// Waits until something accepts TCP connections on host:port, or the child exits, or `timeout` passes.
    public func waitUntilListening(host: String, port: Int, timeout: Duration = .seconds(30)) throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try isListening(host: host, port: port) { return }
            usleep(20_000)
        }
        throw ChildProcessError.notListening(name: name, port: port)
    }

    /// The absolute path of the running executable (to start sibling services from the same binary).
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Finds `name` on PATH.
    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"] {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// Splits a child's output into lines and writes each with a prefix, whole lines only (children never interleave
/// inside a line).
private final class LinePrefixer: @unchecked Sendable {
    private let prefix: [UInt8]
    private var pending: [UInt8] = []
    private let lock = NSLock()

    init(prefix: String) {
        self.prefix = Array("[\(prefix)] ".utf8)
    }

    func feed(_ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        if data.isEmpty {  // end of file: flush a last unterminated line
            if !pending.isEmpty { write(pending + [10]) }
            pending.removeAll()
            return
        }
        pending.append(contentsOf: data)
        var out: [UInt8] = []
        while let newline = pending.firstIndex(of: 10) {
            out += prefix + pending[...newline]
            pending.removeSubrange(...newline)
        }
        if !out.isEmpty { FileHandle.standardOutput.write(Data(out)) }
    }

    private func write(_ line: [UInt8]) {
        FileHandle.standardOutput.write(Data(prefix + line))
    }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case exited(name: String, status: Int32)
    case notListening(name: String, port: Int)

    public var description: String {
        switch self {
        case .exited(let name, let status): return "\(name) exited with status \(status) before it was ready"
        case .notListening(let name, let port): return "\(name) did not listen on port \(port) in time"
        }
    }
}

/// A TCP port that nothing listens on right now (bind to port 0, read it back, release it).
public func findFreePort(host: String = "127.0.0.1") -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = ipv4Address(host: host, port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A TCP port below the kernel's ephemeral range (32768 and up by default) that can be bound right now, for a child
/// process to bind later. Servers that bind port 0 get theirs from the ephemeral range, so one started meanwhile (a
/// test running beside) cannot take this port before the child binds it, as it can take one from `findFreePort`.
public func findFreePortBelowEphemeralRange(host: String = "127.0.0.1") -> Int {
    for _ in 0..<64 {
        let port = Int.random(in: 20_000..<32_768)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        if withSocketAddress(host: host, port: port, { bind(fd, $0, $1) }) == 0 { return port }
    }
    return findFreePort(host: host)
}

private func canConnect(host: String, port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return withSocketAddress(host: host, port: port) { connect(fd, $0, $1) } == 0
}

private func ipv4Address(host: String, port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr(host)
    return addr
}

/// `body` with host:port as a sockaddr and its length (bind, connect).
private func withSocketAddress<R>(host: String, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var addr = ipv4Address(host: host, port: port)
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}
