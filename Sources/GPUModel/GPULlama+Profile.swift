import CUDA

/// The per-operation profile (`swiftwise gpu-check --profile`): every operation between two events, the step queued
/// behind a spin kernel so the GPU's back-to-back time is measured rather than the host's launch pace.
extension GPULlama {
    /// Runs `body`; when profiling, between two events recorded under `name`.
    func timed(_ name: @autoclosure () -> String, _ body: () throws -> Void) throws {
        guard profile != nil else { return try body() }
        let start = try profileEvent()
        try body()
        profileMarks.append((name(), start, try profileEvent()))
    }

    /// Records the next event of the profile's pool (created on first use) and returns its index.
    func profileEvent() throws -> Int {
        let next = profileUsed
        if next == profileEvents.count { profileEvents.append(try gpu.makeEvent()) }
        try gpu.record(profileEvents[next])
        profileUsed += 1
        return next
    }

    /// Starts a profiled step: the spin kernel first (about 20 ms of GPU clock), then a step-start event.
    func beginProfiledStep() throws {
        profileUsed = 0
        profileMarks = []
        try gpu.launch(functions["spin"]!, grid: (1, 1, 1), block: (1, 1, 1), [.int64(40_000_000)], name: "spin")
    }

    /// After the step's final synchronization: event times into `profile`.
    func endProfiledStep() throws {
        guard let first = profileMarks.first, let last = profileMarks.last else { return }
        var totals = profile ?? [:]
        for mark in profileMarks + [(name: "step", start: first.start, end: last.end)] {
            let seconds = try gpu.seconds(from: profileEvents[mark.start], to: profileEvents[mark.end])
            let entry = totals[mark.name, default: (0, 0)]
            totals[mark.name] = (entry.calls + 1, entry.seconds + seconds)
        }
        profile = totals
    }
}
