import XCTest

@testable import GPUModel

/// `--gpu-memory-utilization`'s arithmetic, from the memory measured once the weights are on the device.
final class KVCacheSizeTests: XCTestCase {
    let block = 16 * 98304  // 16 tokens of the 1B shape's fp32 K/V and bf16 shadow

    func testFractionOfTotalLessWhatIsInUseScratchAndReserve() throws {
        let gib = 1 << 30
        // 80 GiB device, 10 GiB in use after loading (context, workspace, weights): 0.5 leaves 40 - 10 - 1 - 0.25 GiB.
        let memory = (free: 70 * gib, total: 80 * gib)
        let available = 40 * gib - 10 * gib - gib - (256 << 20)
        XCTAssertEqual(try KVCacheSize.memoryFraction(0.5).blocks(memory, blockBytes: block, scratchBytes: gib), available / (block + 16))
        XCTAssertEqual(try KVCacheSize.memoryFraction(0.5, reserveBytes: 0).blocks(memory, blockBytes: block, scratchBytes: gib),
                       (available + (256 << 20)) / (block + 16))
        // An explicit count is taken as it is, whatever the memory.
        XCTAssertEqual(try KVCacheSize.blocks(7).blocks((free: 0, total: gib), blockBytes: block, scratchBytes: gib), 7)
    }

    func testNothingLeftIsAnErrorNamingTheFlag() {
        let gib = 1 << 30
        XCTAssertThrowsError(try KVCacheSize.memoryFraction(0.1).blocks((free: 70 * gib, total: 80 * gib), blockBytes: block, scratchBytes: gib)) {
            XCTAssertTrue("\($0)".contains("--gpu-memory-utilization 0.1"), "\($0)")
        }
    }
}
