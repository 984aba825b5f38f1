import ArgumentParser
import ServiceKit

@main
struct Swiftwise: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftwise",
        abstract: "Prefill/decode disaggregated LLM serving: KV store, engine nodes, proxy.",
        subcommands: [DemoCommand.self, ServeCommand.self, KVStoreCommand.self, ProxyCommand.self, GenerateCommand.self, GPUCheckCommand.self,
                      BenchCommand.self])

    static func main() async {
        ParentWatch.startIfRequested()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            ChildProcess.yieldToSignalStop()
        } catch {
            ChildProcess.yieldToSignalStop()
            exit(withError: error)
        }
    }
}
