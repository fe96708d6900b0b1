import Batchman
import CBatchmanSystem
import Glibc

/// A thin parent for `batchman run` and `batchman check`, as PostgreSQL's postmaster is for its
/// servers: the host does its work in a child, and the parent waits for it, passes signals on,
/// and gives the run its exit status. A run never ends with status 0 while accepted jobs have no
/// result: if the host ends without finishing its run (a plugin in the host called `_exit(0)`,
/// crashed, aborted; the OOM killer), the parent says how it ended, which plugin calls were under
/// way, and how many accepted jobs got no result, and exits with 70:
///
///     batchman: the host process was terminated by signal 11 (SIGSEGV) while the host was
///     calling plugin "test" (key "k"); 12 accepted jobs got no result. ...
///
/// What it needs to know the host tells it through shared memory (``SupervisorBoard``), as it
/// goes, with no system call. Signals sent to the parent (`kill PID`, `timeout`) are passed on;
/// a terminal's own (Ctrl-C) reach the host directly, as they reach the whole process group.
/// A signal that reaches both (a kill of the process group, systemd's stop of the whole cgroup)
/// is taken once: the host's ``SignalStateMachine`` sees the pair and ignores its second half.
public enum Supervisor {
    /// The hidden subcommand the supervised host runs as: `batchman __host PARENT CLOSED ARGS...`.
    public static let hostSubcommand = "__host"
    /// The host's descriptor for the board, at start.
    static let boardDescriptor: Int32 = 3

    /// Whether `arguments` (without the program name) are a command the parent supervises.
    public static func supervises(_ arguments: [String]) -> Bool {
        guard let verb = arguments.first, verb == "run" || verb == "check" else { return false }
        return !arguments.contains { $0 == "--help" || $0 == "-h" }
    }

    /// In the host a supervisor started: takes the board and the parent's facts, and returns the
    /// command's own arguments; nil if this process is not such a host.
    public static func attachHost(_ arguments: [String]) -> [String]? {
        guard arguments.first == hostSubcommand, arguments.count >= 3, let parent = pid_t(arguments[1]) else { return nil }
        // Die with the parent, even by SIGKILL (as a host killed with -9 would); the check
        // after closes the race with a parent that died before the call.
        _ = bm_set_parent_death_signal(SIGKILL)
        if getppid() != parent { _exit(70) }
        HostProcessIdentity.supervisor = parent
        StandardDescriptors.markClosedAtStart(arguments[2].split(separator: ",").compactMap { Int32($0) })
        if let mapped = mmap(nil, SupervisorBoard.size, PROT_READ | PROT_WRITE, MAP_SHARED, boardDescriptor, 0), mapped != MAP_FAILED {
            SupervisorBoard.attach(mapped)
        }
        close(boardDescriptor)
        return Array(arguments.dropFirst(3))
    }

    /// Runs `arguments` in a supervised host and exits as the host did; never returns.
    public static func run(_ arguments: [String]) -> Never {
        // Before anything opens a descriptor: a closed standard one must not become the board.
        StandardDescriptors.fillClosed()
        var waited = sigset_t()
        sigemptyset(&waited)
        for signal in SignalStateMachine.handled + [SIGCHLD] { sigaddset(&waited, signal) }
        pthread_sigmask(SIG_BLOCK, &waited, nil)
        Glibc.signal(SIGPIPE, SIG_IGN)

        let board = bm_memfd("batchman-board")
        guard board >= 0, ftruncate(board, off_t(SupervisorBoard.size)) == 0,
              let mapped = mmap(nil, SupervisorBoard.size, PROT_READ | PROT_WRITE, MAP_SHARED, board, 0), mapped != MAP_FAILED else {
            fail("cannot make the memory it shares with the host: \(Errno.current)")
        }
        let report = SupervisorBoard(base: mapped)
        let closed = StandardDescriptors.closedAtStart.sorted().map(String.init).joined(separator: ",")
        let child: pid_t
        switch SelfSpawn.start(["batchman", hostSubcommand, "\(getpid())", closed.isEmpty ? "-" : closed] + arguments,
                               descriptors: [(board, boardDescriptor)], ownProcessGroup: false, standardInput: .inherited,
                               blockedSignals: SignalStateMachine.handled) {
        case .success(let pid): child = pid
        case .failure(let error): fail("cannot start the host: \(error.reason)")
        }
        close(board)
        // The parent reads and writes nothing of the run's: the host has its own copies.
        for descriptor in [STDIN_FILENO, STDOUT_FILENO] {
            let null = open("/dev/null", O_RDWR)
            if null >= 0, null != descriptor {
                dup2(null, descriptor)
                close(null)
            }
        }

        var code: Int32 = 0, sender: Int32 = 0, value: Int32 = 0
        while case let signal = bm_sigwaitinfo(&waited, &code, &sender, &value), signal > 0 {
            if signal == SIGCHLD {
                guard case .success(let end?) = Syscall.wait(for: child, blocking: false) else { continue }
                conclude(end, report.read())
            }
            // A process sent it (kill, timeout, systemd): pass it on, saying who sent it. The
            // kernel's own (a terminal's Ctrl-C, a hangup) reach the whole group, the host too.
            if code <= 0 { _ = bm_sigqueue(child, signal, sender) }
        }
        fail("cannot wait for signals: \(Errno.current)")
    }

    /// The host ended: exits as it did if it ended on purpose, else reports and exits with 70.
    static func conclude(_ end: ProcessEnd, _ board: SupervisorBoard.Report) -> Never {
        if let status = board.finished { _exit(status) }
        let message = report(end, board)
        message.withCString { _ = write(STDERR_FILENO, $0, strlen($0)) }
        _exit(70)
    }

    /// What the parent says of a host that ended without finishing its run.
    static func report(_ end: ProcessEnd, _ board: SupervisorBoard.Report) -> String {
        let how = switch end {
        case .signaled(let signal): "was terminated by signal \(signal) (\(SignalName.of(signal)))"
        case .exited(let status): "exited with status \(status) without finishing its run"
        }
        let calls = board.calls.isEmpty ? "" : " while the host was calling " + board.calls.joined(separator: " and ")
        // Lines whose write was under way are neither answered nor unanswered: the kernel may
        // have taken them. They are named apart, not counted either way.
        let open = board.accepted > board.answered ? board.accepted - board.answered : 0
        let maybe = min(board.beingWritten, open)
        let unanswered = open - maybe
        var jobs = "\(unanswered) accepted job\(unanswered == 1 ? "" : "s") got no result"
        if let spool = board.spool, open > 0 { jobs += "; the spool \(spool) holds them, and the next run with --spool \(spool) replays them" }
        if maybe > 0 { jobs += "; the results of \(maybe) more were being written to the output as it ended, and may not have reached it" }
        let advice = board.calls.isEmpty ? "" : " A plugin that can crash or exit belongs in \"isolation\": \"process\", where it costs a batch, not the host."
        return "batchman: the host process \(how)\(calls); \(jobs).\(advice)\n"
    }

    private static func fail(_ message: String) -> Never {
        "batchman: \(message)\n".withCString { _ = write(STDERR_FILENO, $0, strlen($0)) }
        _exit(70)
    }
}
