import Models
import XCTest

@testable import CUDA
@testable import GPUModel

/// The op-by-op harness on the GPU (every kernel against the Double reference), where a CUDA driver and device are
/// found; skipped with the reason elsewhere (CI has no GPU: `scripts/gpu-check.sh` runs it on a CUDA machine).
final class GPUOpHarnessTests: XCTestCase {
    func testKernelsMatchTheReference() throws {
        let gpu: GPUContext
        do {
            gpu = try GPUContext()
        } catch {
            throw XCTSkip("no usable CUDA GPU here (\(error)); run scripts/gpu-check.sh on a CUDA machine")
        }
        for fp32 in [false, true] {
            for attention in [GPUOps.Attention.splitAndTiled, .flash, .decode] {
                let backend = try GPUOps(gpu: gpu, fp32: fp32, attention: attention)
                let checks = try OpHarness.run(backend, tolerances: fp32 ? .fp32 : .bf16)
                let failed = checks.filter { !$0.passed }
                XCTAssertTrue(failed.isEmpty, OpHarness.report(checks, backend: backend.name))
            }
        }
    }
}
