import Foundation
import ServiceKit
import Testing

@Suite("ChildProcess: children start with no signal blocked")
struct ChildProcessTests {
    /// This test runs on a thread of Swift's concurrency pool, which blocks nearly every signal; a child spawned
    /// from it directly inherits that mask and lives through SIGTERM.
    @Test("a child started from a concurrency thread stops on SIGTERM")
    func childStopsOnSIGTERM() async throws {
        let child = try ChildProcess(name: "sleep", executable: "/bin/sleep", arguments: ["30"])
        let pid = child.process.processIdentifier
        let blocked = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("SigBlk:") }.map(String.init) ?? "SigBlk: unknown"
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(3)
        while child.process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!child.process.isRunning, "SIGTERM did not stop the child (\(blocked))")
        await child.kill()
        #expect(child.process.terminationReason == .uncaughtSignal && child.process.terminationStatus == SIGTERM)
    }
}
