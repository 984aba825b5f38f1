import ArgumentParser
import AsyncHTTPClient
import Bench
import Foundation
import OpenAIAPI
import ServiceKit

/// The workload flags shared by `bench serve` and `bench compare` (names as in `vllm bench serve`).
struct WorkloadOptions: ParsableArguments {
    @Option(help: "chat or completions.") var endpoint = "completions"
    @Option(help: "random, prefix-repetition, or a FILE.jsonl of {\"prompt\", \"output_len\"}.") var dataset = "random"
    @Option(help: "Requests to send.") var numPrompts = 64
    @Option(help: "Prompt length (words ≈ tokens).") var inputLen = 128
    @Option(help: "Tokens to generate per request.") var outputLen = 64
    @Option(help: "prefix-repetition: shared prefix length.") var prefixLen = 96
    @Option(help: "prefix-repetition: distinct prefixes.") var numPrefixes = 4
    @Option(help: "Requests per second (Poisson arrivals), or inf to send all at once.") var requestRate = "inf"
    @Option(help: "At most this many requests in flight.") var maxConcurrency: Int?
    @Option(parsing: .upToNextOption, help: "SLOs for goodput, e.g. ttft:500 tpot:100 (milliseconds).") var goodput: [String] = []
    @Option(help: "Seed of the prompt generator and arrivals.") var seed: UInt64 = 0
    @Flag(help: "Generate exactly --output-len tokens (ignore end of sequence).") var ignoreEos = false
    @Option(help: "Sampling temperature (0: greedy). Above 0, --top-p, --top-k and --min-p are sent too.") var temperature: Double = 0
    @Option(help: "Nucleus sampling: keep the most likely tokens up to this cumulative probability.") var topP: Double = 1
    @Option(help: "Keep the k most likely tokens (0: all).") var topK = 0
    @Option(help: "Keep tokens at least this fraction as likely as the most likely one.") var minP: Double = 0

    func validate() throws {
        guard ["chat", "completions"].contains(endpoint) else { throw ValidationError("--endpoint: chat or completions") }
        guard rate != nil else { throw ValidationError("--request-rate: a positive number or inf") }
        guard numPrompts > 0, inputLen > 0, outputLen > 0 else { throw ValidationError("--num-prompts, --input-len, --output-len must be positive") }
        guard temperature >= 0, topP > 0, topP <= 1, topK >= 0, minP >= 0, minP <= 1 else {
            throw ValidationError("--temperature >= 0, 0 < --top-p <= 1, --top-k >= 0, 0 <= --min-p <= 1")
        }
        _ = try slo()
    }

    var rate: Double? {
        if requestRate == "inf" { return .infinity }
        guard let r = Double(requestRate), r > 0 else { return nil }
        return r
    }

    func slo() throws -> [String: Double] {
        var out: [String: Double] = [:]
        for item in goodput {
            let parts = item.split(separator: ":")
            guard parts.count == 2, ["ttft", "tpot", "e2el"].contains(parts[0]), let ms = Double(parts[1]), ms > 0 else {
                throw ValidationError("--goodput: items like ttft:500 tpot:100 e2el:2000 (milliseconds)")
            }
            out[String(parts[0])] = ms
        }
        return out
    }

    func requests() throws -> [BenchRequest] {
        try BenchDataset(dataset, prefixLength: prefixLen, prefixes: numPrefixes)
            .requests(count: numPrompts, inputLength: inputLen, outputLength: outputLen, seed: seed)
    }

    func loadOptions(url: String, model: String?) -> ServingLoadOptions {
        var o = ServingLoadOptions(baseURL: url, endpoint: endpoint)
        o.model = model
        o.requestRate = rate ?? .infinity
        o.maxConcurrency = maxConcurrency
        o.ignoreEOS = ignoreEos
        o.seed = seed
        o.temperature = temperature
        o.topP = topP
        o.topK = topK
        o.minP = minP
        return o
    }

    /// Runs the workload against `url` and returns the report and the raw samples.
    func run(label: String, url: String, model: String?) async throws -> (ServingReport, [RequestSample]) {
        let requests = try requests()
        let (samples, seconds) = await runServingLoad(requests, options: loadOptions(url: url, model: model)) { done, total in
            ProgressBar.draw(label: label, done: done, total: total)
        }
        return (ServingReport(label: label, samples: samples, seconds: seconds, goodput: try slo()), samples)
    }
}

/// `swiftwise bench serve --url URL`: a serving benchmark like `vllm bench serve`, against any OpenAI-compatible
/// server (a Swiftwise proxy or node, vLLM, llama-server).
struct ServeBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serving benchmark (TTFT, TPOT, ITL, E2E, throughput, goodput) against an OpenAI-compatible URL.")

    @Option(help: "Base URL of the server.") var url = "http://127.0.0.1:8030"
    @Option(help: "Model name to send (default: the first of GET /v1/models).") var model: String?
    @Option(help: "Label of this run in the report.") var label = "server"
    @Option(help: "Write the report (and per-request samples) as JSON here.") var json: String?
    @Option(help: "Write an SVG plot of the latency distributions here.") var plot: String?
    @OptionGroup var workload: WorkloadOptions

    func run() async throws {
        var name = model
        if name == nil { name = try await Self.firstModel(url) }
        let (report, samples) = try await workload.run(label: label, url: url, model: name)
        print(report.text)
        try Self.write(json: json, plot: plot, runs: [(label, samples, report)])
    }

    static func firstModel(_ url: String) async throws -> String? {
        guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/v1/models"), timeout: .seconds(10)) else {
            throw ValidationError("\(url) does not answer")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView))
        return json?["data"]?.arrayValue?.first?["id"]?.stringValue
    }

    static func write(json: String?, plot: String?, runs: [(String, [RequestSample], ServingReport)]) throws {
        if let json {
            struct Run: Codable { var report: ServingReport; var samples: [RequestSample] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(runs.map { Run(report: $0.2, samples: $0.1) }).write(to: URL(fileURLWithPath: json))
        }
        if let plot {
            try LatencyPlot.svg(runs.map { (label: $0.0, samples: $0.1, report: $0.2) }).write(toFile: plot, atomically: true, encoding: .utf8)
        }
    }
}
