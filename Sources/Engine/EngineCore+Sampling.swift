import Foundation
import Models

/// How the rows a step samples get their tokens: what each row asks of the backend, and the host sampling of the rows
/// whose logits come back.
extension EngineCore {
    /// Plainly greedy rows need only their argmax (a GPU sends one int instead of the vocabulary); other rows are
    /// drawn on the device where the backend can, penalties included, and with log-probabilities where it reports
    /// them (their uniform taken from the request's random state here, as the host sampler would take it); the others
    /// are sampled on the host from their logits.
    func rowOutputs(_ sampling: [Sequence]) -> [RowOutput] {
        let drawsOnDevice = backend.drawsOnDevice, logprobsOnDevice = backend.drawsLogprobsOnDevice
        return sampling.map { s in
            let p = s.request.params
            if p.argmaxSuffices { return .argmax }
            guard drawsOnDevice, p.drawSuffices(logprobsOnDevice: logprobsOnDevice) else { return .logits }
            return .draw(DeviceDraw(p, prompt: s.request.prompt, output: s.output) { s.random.uniform() })
        }
    }

    /// Samples the given rows of `logits` into `results`. A vocabulary row takes 0.1-1 ms to sample, so a step with
    /// several rows spreads them over the cores (the model is idle meanwhile): each row's token depends only on its
    /// own logits and its request's random state, so the tokens do not depend on the threads.
    func sample(_ rows: [(index: Int, row: Int)], of sequences: [Sequence], logits: UnsafeMutableBufferPointer<Float>,
                        into results: inout [SampledToken]) {
        guard !rows.isEmpty else { return }
        let vocab = backend.config.vocabSize
        let workers = min(rows.count, ProcessInfo.processInfo.activeProcessorCount, rows.count * vocab / Self.sampleTokensPerWorker + 1)
        while samplers.count < workers { samplers.append(Sampler()) }
        results.withUnsafeMutableBufferPointer { results in
            samplers.withUnsafeMutableBufferPointer { samplers in
                let job = SamplingJob(rows: rows, sequences: sequences, logits: logits, results: results, samplers: samplers,
                                      vocab: vocab, workers: workers)
                if workers == 1 { job.run(0) } else { DispatchQueue.concurrentPerform(iterations: workers) { job.run($0) } }
            }
        }
    }

    /// A step's sampling as its threads share it. Unchecked: worker w touches only the rows w, w + workers, ... (their
    /// logits, results and sequences) and samplers[w], while the step loop waits for all of them.
    private struct SamplingJob: @unchecked Sendable {
        let rows: [(index: Int, row: Int)]
        let sequences: [Sequence]
        let logits: UnsafeMutableBufferPointer<Float>
        let results: UnsafeMutableBufferPointer<SampledToken>
        let samplers: UnsafeMutableBufferPointer<Sampler>
        let vocab: Int, workers: Int

        func run(_ worker: Int) {
            for k in stride(from: worker, to: rows.count, by: workers) {
                let (index, row) = rows[k]
                let s = sequences[index]
                let values = UnsafeMutableBufferPointer(rebasing: logits[row * vocab..<(row + 1) * vocab])
                results[index] = samplers[worker].sample(values, params: s.request.params, prompt: s.request.prompt, output: s.output,
                                                         random: &s.random)
            }
        }
    }

    /// Logits per sampling thread below which another thread costs more than it saves (a row of a 128k vocabulary
    /// alone is worth one).
    static let sampleTokensPerWorker = 100_000
}
