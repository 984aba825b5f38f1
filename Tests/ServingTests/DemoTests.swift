import Foundation
import ServiceKit
import Testing

/// `swiftwise demo` end to end: answers through its proxy equal a colocated node's, and Ctrl-C leaves no child.
extension Serving {
    @Suite("swiftwise demo", .timeLimit(.minutes(5)))
    struct DemoTests {
        @Test("the demo's proxy answers exactly like a colocated node (openai client); SIGINT stops every child")
        func demo() async throws {
            let demo = try Service("demo", { ["demo", "--port", "\($0)", "--prefill", "1", "--decode", "2", "--kv-cache-memory", "64MiB",
                                              "--max-model-len", "1024", "--log-level", "warning"] })
            let colocated = try Service.serve("colocated")
            let deadline = ContinuousClock.now + .seconds(120)
            while !demo.log.contains("serving until Ctrl-C") {
                #expect(demo.child.process.isRunning, "demo exited:\n\(demo.log)")
                guard demo.child.process.isRunning, ContinuousClock.now < deadline else { return }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(demo.log.contains("swiftwise demo: ready at http://127.0.0.1:\(demo.port)"))
            let pids = ProcessTable.children(of: demo.child.process.processIdentifier)
            #expect(pids.count == 5, "kvstore, 1 prefill, 2 decode, proxy: \(pids)")
            try await colocated.waitUntilReady()

            let script = TestData.packageRoot.appendingPathComponent("Tests/python/pd_equivalence_check.py").path
            let log = TestData.temporaryDirectory() + "/pd-check.log"
            let python = try ChildProcess(name: "python", executable: "/usr/bin/env", arguments: [
                "python3", script, "http://127.0.0.1:\(demo.port)/v1", "http://127.0.0.1:\(colocated.port)/v1",
                "SmolLM2-135M-Instruct.Q4_1", "smol"], logFile: log)
            let status = await python.exitStatus()
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(status == 0, "\(output)\n--- demo ---\n\(demo.log.suffix(4000))")

            // `swiftwise bench serve` against the running demo: its JSON report counts what was sent.
            let report = TestData.temporaryDirectory() + "/bench.json"
            let bench = try ChildProcess(name: "bench", executable: TestData.swiftwise, arguments: [
                "bench", "serve", "--url", "http://127.0.0.1:\(demo.port)", "--num-prompts", "6", "--input-len", "20", "--output-len", "5",
                "--ignore-eos", "--max-concurrency", "3", "--json", report, "--plot", report + ".svg"], logFile: report + ".log")
            #expect(await bench.exitStatus() == 0, "\((try? String(contentsOfFile: report + ".log", encoding: .utf8)) ?? "")")
            let runs = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [[String: Any]]
            let summary = runs?.first?["report"] as? [String: Any]
            #expect(summary?["requests"] as? Int == 6 && summary?["completed"] as? Int == 6 && summary?["failed"] as? Int == 0, "\(summary ?? [:])")
            #expect(summary?["outputTokens"] as? Int == 30)
            #expect((runs?.first?["samples"] as? [Any])?.count == 6)
            #expect((try? String(contentsOfFile: report + ".svg", encoding: .utf8))?.hasPrefix("<svg") == true)

            kill(demo.child.process.processIdentifier, SIGINT)
            #expect(await demo.child.exitStatus() == 0)
            #expect(demo.log.contains("swiftwise demo: stopped"))
            try await Task.sleep(for: .milliseconds(300))
            #expect(pids.filter(ProcessTable.isRunning).isEmpty, "children left: \(pids.filter(ProcessTable.isRunning))")
        }

        @Test("SIGTERM to `swiftwise bench proxy` stops the servers it started (stub node, proxies, nginx where installed)")
        func benchStopsItsChildren() async throws {
            let bench = try ChildProcess(name: "bench", executable: TestData.swiftwise, arguments: [
                "bench", "proxy", "--concurrency", "1", "--requests", "100000000"])
            let pid = bench.process.processIdentifier
            var pids: [Int32] = []
            for _ in 0..<200 where pids.count < 3 {  // the stub node and two proxies, within 20 s
                try await Task.sleep(for: .milliseconds(100))
                pids = ProcessTable.children(of: pid)
            }
            #expect(pids.count >= 3, "children: \(pids)")
            kill(pid, SIGTERM)
            let status = await bench.exitStatus()
            #expect(status == 128 + SIGTERM, "status \(status), \(bench.process.terminationReason == .uncaughtSignal ? "killed by that signal" : "exited")")
            try await Task.sleep(for: .milliseconds(300))
            #expect(pids.filter(ProcessTable.isRunning).isEmpty, "children left: \(pids.filter(ProcessTable.isRunning))")
        }
    }
}
