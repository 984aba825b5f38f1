extension Duration {
    /// The duration in seconds, for rates and reports.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
