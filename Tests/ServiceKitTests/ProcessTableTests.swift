import Foundation
import ServiceKit
import Testing

/// `bench proxy`'s CPU column: a process's own time, and with `children` its children's (nginx's workers).
@Suite("ProcessTable: CPU time and children from /proc")
struct ProcessTableTests {
    @Test("a busy process's time grows by about what it spent; a busy child counts only with children")
    func countsOwnAndChildren() throws {
        let me = getpid()
        let before = try #require(ProcessTable.cpuSeconds(me))
        let start = ContinuousClock.now
        var x = 0.0
        while ContinuousClock.now - start < .milliseconds(400) { x += sin(x) + 1 }  // ~0.4 s of CPU on this thread
        #expect(x > 0)
        let after = try #require(ProcessTable.cpuSeconds(me))
        #expect(after - before >= 0.25 && after - before < 5)

        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = ["-c", "while :; do :; done"]
        try child.run()
        // SIGKILL: a bare Process spawned from a test thread inherits its mask, which blocks SIGTERM (ChildProcess
        // starts its children from a thread that blocks nothing; ChildProcessTests).
        defer { kill(child.processIdentifier, SIGKILL); child.waitUntilExit() }
        Thread.sleep(forTimeInterval: 0.6)
        let alone = try #require(ProcessTable.cpuSeconds(me))
        let withChildren = try #require(ProcessTable.cpuSeconds(me, children: true))
        #expect(withChildren - alone >= 0.2, "the spinning child's time: \(withChildren - alone) s")
        #expect(ProcessTable.children(of: me).contains(child.processIdentifier))
        #expect(ProcessTable.isRunning(child.processIdentifier))
        #expect(ProcessTable.cpuSeconds(Int32.max) == nil)
    }
}
