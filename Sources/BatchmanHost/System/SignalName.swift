import Glibc

/// The names the host prints for signals: "SIGTERM", or "signal 34" for one without a name here.
/// Kept apart from the signal state machine so the syscall layer (and the fuzz targets built from
/// it) can name how a process ended without the signal handling.
enum SignalName {
    static func of(_ signal: Int32) -> String {
        switch signal {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGQUIT: "SIGQUIT"
        case SIGHUP: "SIGHUP"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        case SIGPIPE: "SIGPIPE"
        case SIGKILL: "SIGKILL"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGXCPU: "SIGXCPU"
        default: "signal \(signal)"
        }
    }
}
