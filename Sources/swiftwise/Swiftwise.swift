import ArgumentParser

@main
struct Swiftwise: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftwise",
        abstract: "Prefill/decode disaggregated LLM serving: KV store, engine nodes, proxy.",
        subcommands: [ServeCommand.self, KVStoreCommand.self, ProxyCommand.self, GenerateCommand.self, BenchCommand.self])
}
