import ArgumentParser

/// `swiftwise bench ...`: benchmarks, each measuring us against a peer in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks against peers measured in the same run.",
        subcommands: [ServeBenchCommand.self, CompareBenchCommand.self, PDBenchCommand.self, KVStoreBenchCommand.self, ProxyBenchCommand.self, ModelBenchCommand.self, SamplerBenchCommand.self, StubNodeCommand.self])
}
