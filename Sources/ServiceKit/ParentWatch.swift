import Foundation

/// Children started by `swiftwise demo` stop when their parent goes away, even if it was killed without a chance
/// to stop them: the parent names itself in `SWIFTWISE_PARENT_PID`; the child polls and terminates itself
/// gracefully once it has been re-parented.
public enum ParentWatch {
    public static let environmentKey = "SWIFTWISE_PARENT_PID"

    public static func startIfRequested() {
        guard let text = ProcessInfo.processInfo.environment[environmentKey], let parent = Int32(text) else { return }
        guard getppid() == parent else {
            kill(getpid(), SIGTERM)
            return
        }
        let thread = Thread {
            while getppid() == parent { usleep(500_000) }
            kill(getpid(), SIGTERM)
        }
        thread.name = "parent-watch"
        thread.start()
    }
}
