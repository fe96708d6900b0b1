import Glibc
import Synchronization

/// Catches a plugin that calls `exit()` inside the host.
///
/// Without it, a plugin's `exit(0)` ends the host with status 0, no results and no word. An
/// `atexit` handler runs on the thread that called `exit`; the host marks each plugin call on
/// its thread, so the handler can name the plugin and turn the exit into a failure (status 70).
/// The host's own exits go through ``exit(_:)``, which the handler lets pass.
public enum ProcessExitGuard {
    private static let isHostExiting = Atomic<Bool>(false)
    /// The thread's current plugin call site (a C string), or NULL outside plugin calls. Made on
    /// first use, by whichever process calls plugins (a worker process never installs the
    /// handler, and key 0 is some other library's).
    private static let callSiteKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Installs the handler; call once, first thing in `main`.
    public static func install() {
        _ = callSiteKey
        atexit {
            guard !ProcessExitGuard.isHostExiting.load(ordering: .acquiring) else { return }
            let site = pthread_getspecific(ProcessExitGuard.callSiteKey).map { String(cString: $0.assumingMemoryBound(to: CChar.self)) }
            let who = site.map { "\($0) called exit() while the host was calling it" }
                ?? "something in the host process (a plugin's own thread?) called exit()"
            let message = "batchman: \(who): the host cannot go on; jobs it had accepted got no result. "
                + "A plugin must return from its functions and report failures through emit() or its return value.\n"
            _ = message.withCString { write(2, $0, strlen($0)) }
            _exit(70)
        }
    }

    /// Exits the process on purpose (atexit handlers of other code still run); a supervising
    /// parent is told it was on purpose, and exits with the same status.
    public static func exit(_ status: Int32) -> Never {
        isHostExiting.store(true, ordering: .releasing)
        SupervisorBoard.shared?.finish(status: status)
        Glibc.exit(status)
    }

    /// Runs `body` (a call into a plugin) marked with `site` on this thread, and on the
    /// supervisor's board, which names it if the process ends during the call.
    static func during<Result>(_ site: UnsafePointer<CChar>, _ body: () -> Result) -> Result {
        let previous = pthread_getspecific(callSiteKey)
        pthread_setspecific(callSiteKey, UnsafeRawPointer(site))
        let board = SupervisorBoard.shared
        board?.beginCall(site)
        defer {
            pthread_setspecific(callSiteKey, previous)
            if let previous { board?.beginCall(previous.assumingMemoryBound(to: CChar.self)) } else { board?.endCall() }
        }
        return body()
    }
}
