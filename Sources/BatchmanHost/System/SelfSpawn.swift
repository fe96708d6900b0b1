import Glibc

/// Starts this executable again as a helper process (an isolated key's worker, a plugin-test
/// check): standard input on /dev/null, the given descriptors in place, signals unblocked and at
/// their defaults (the host blocks them for its watcher thread), so the plugin inside gets an
/// ordinary process.
enum SelfSpawn {
    /// - Parameters:
    ///   - descriptors: each `source` is made the child's `target` descriptor.
    ///   - ownProcessGroup: a process group of its own, so that Ctrl-C at a terminal reaches the
    ///     host (which drains) and not the child.
    ///   - environment: the child's environment; nil keeps this process's.
    ///   - standardInput: `/dev/null` (a helper reads no input), or this process's own.
    ///   - blockedSignals: signals the child starts with blocked (the supervised host blocks
    ///     its signals before any thread runs, so none may arrive before); the rest unblocked.
    /// - Returns: the child's pid, or why the spawn failed.
    static func start(
        _ arguments: [String], descriptors: [(source: Int32, target: Int32)], ownProcessGroup: Bool, environment: [String]? = nil,
        standardInput: StandardInput = .devNull, blockedSignals: [Int32] = []
    ) -> Result<pid_t, Failure> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if standardInput == .devNull { posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0) }
        for (source, target) in descriptors { posix_spawn_file_actions_adddup2(&actions, source, target) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in blockedSignals { sigaddset(&mask, signal) }
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in SignalStateMachine.handled + [SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var cEnvironment: [UnsafeMutablePointer<CChar>?] = (environment ?? []).map { strdup($0) } + [nil]
        defer { for variable in cEnvironment { free(variable) } }
        var pid = pid_t()
        let status = environment == nil
            ? posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, &cArguments, environ)
            : posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, &cArguments, &cEnvironment)
        return status == 0 ? .success(pid) : .failure(Failure(errno: status))
    }

    enum StandardInput: Equatable {
        case devNull
        case inherited
    }

    struct Failure: Error {
        let errno: Int32
        var reason: String { Errno(rawValue: errno).description }
    }

    /// This process's environment with `variable` set to `value`.
    static func environment(setting variable: String, to value: String) -> [String] {
        var environment: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if !text.hasPrefix("\(variable)=") { environment.append(text) }
            entry += 1
        }
        return environment + ["\(variable)=\(value)"]
    }
}
