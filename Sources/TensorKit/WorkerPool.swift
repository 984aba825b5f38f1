import Foundation
import Synchronization

/// Persistent kernel threads. A parallel section hands each thread one contiguous range; between sections the
/// workers spin briefly (consecutive matmuls of a forward pass are microseconds apart, and waking a sleeping thread
/// costs more than a whole small matmul), then sleep on a condition so an idle process burns no CPU and can exit.
final class WorkerPool: @unchecked Sendable {
    private let workers: Int
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let condition = NSCondition()
    /// The current section; written by the caller before `generation` is bumped, read by workers after.
    private var body: (@Sendable (Int) -> Void)?
    private var count = 0
    private var parties = 0
    /// One section at a time (several engines in one process share the pool).
    private let sectionLock = NSLock()

    /// `threads` in all, the calling thread included.
    init(threads: Int) {
        workers = max(0, threads - 1)
        for w in 0..<workers {
            let thread = Thread { [unowned self] in self.work(index: w + 1) }
            thread.name = "swiftwise-kernel-\(w + 1)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(i)` for i in 0..<count split into `threads` contiguous ranges; returns when all are done.
    func run(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        // Every worker takes part in every section (some ranges may be empty): the caller then waits for all of
        // them, so no worker can still be reading this section's fields when the next one is set up.
        let parties = workers + 1
        guard parties > 1, count > 1 else {
            for i in 0..<count { body(i) }
            return
        }
        sectionLock.lock()
        defer { sectionLock.unlock() }
        self.body = body
        self.count = count
        self.parties = parties
        remaining.store(parties - 1, ordering: .releasing)
        condition.lock()
        generation.add(1, ordering: .releasing)
        condition.broadcast()
        condition.unlock()
        for i in 0..<count / parties { body(i) }  // party 0's range
        while remaining.load(ordering: .acquiring) > 0 {}
        self.body = nil
    }

    private func work(index: Int) {
        var seen = 0
        while true {
            // Spin for the next section, then sleep until one comes.
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen && spins < 20_000 {
                spins += 1
                current = generation.load(ordering: .acquiring)
            }
            if current == seen {
                condition.lock()
                while generation.load(ordering: .acquiring) == seen { condition.wait() }
                condition.unlock()
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if let body {
                for i in (count * index / parties)..<(count * (index + 1) / parties) { body(i) }
            }
            remaining.subtract(1, ordering: .releasing)
        }
    }
}
