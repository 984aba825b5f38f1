import Testing

/// Suites that start model-serving processes or run the model in process run one test at a time: each already
/// keeps both cores busy, and running them side by side only starves the timing-sensitive network tests.
@Suite("Serving (one test at a time)", .serialized)
enum Serving {}
