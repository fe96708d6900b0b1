import Batchman
import CBatchmanSystem
import Glibc

/// A running plugin worker process (``PluginWorker``): its pid and the host's end of its socket.
final class WorkerProcess {
    let pid: pid_t
    let channel: FrameChannel
    /// The outcomes of the current batch, in memory shared with the worker.
    let outcomes: OutcomeLog.Reader
    private var isReaped = false

    private init(pid: pid_t, channel: FrameChannel, outcomes: OutcomeLog.Reader) {
        self.pid = pid
        self.channel = channel
        self.outcomes = outcomes
    }

    deinit {
        close(outcomes.fileDescriptor)
    }

    /// Starts a worker and waits for it to load `pluginPath` and create `key`'s instance.
    /// - Returns: the worker and the plugin's name and version, or why it could not start.
    static func start(
        pluginPath: String, key: String, config: String, debug: Bool, memoryLimit: Int?, logger: BatchmanLogger
    ) -> Result<(WorkerProcess, name: String, version: String), WorkerStartError> {
        var socket: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &socket) == 0 else {
            return .failure(WorkerStartError("cannot create its socket: \(String(cString: strerror(errno)))"))
        }
        var output: [Int32] = [0, 0]
        guard bm_pipe_cloexec(&output) == 0 else {
            close(socket[0])
            close(socket[1])
            return .failure(WorkerStartError("cannot create its output pipe: \(String(cString: strerror(errno)))"))
        }
        guard let log = OutcomeLog.Reader.make() else {
            close(socket[0])
            close(socket[1])
            close(output[0])
            close(output[1])
            return .failure(WorkerStartError("cannot create its shared memory: \(String(cString: strerror(errno)))"))
        }
        // Above 4, so that dup2 onto 3 and 4 always makes new descriptors (without CLOEXEC).
        let workerEnd = fcntl(socket[1], F_DUPFD_CLOEXEC, 10)
        let workerLog = fcntl(log.fileDescriptor, F_DUPFD_CLOEXEC, 10)
        close(socket[1])
        defer {
            close(workerEnd)
            close(workerLog)
            close(output[1])
        }
        let spawned = spawn(socket: workerEnd, log: workerLog, output: output[1], memoryLimit: memoryLimit)
        guard case .success(let pid) = spawned else {
            close(socket[0])
            close(output[0])
            close(log.fileDescriptor)
            if case .failure(let error) = spawned { return .failure(error) }
            preconditionFailure()
        }
        LineForwarder.start(reading: output[0], source: "plugin of key \"\(key)\" (worker \(pid))", logger: logger)
        let worker = WorkerProcess(pid: pid, channel: FrameChannel(fileDescriptor: socket[0]), outcomes: log)
        guard worker.channel.write(.start(pluginPath: pluginPath, key: key, config: config, debug: debug)) else {
            return .failure(WorkerStartError("exited (\(worker.wait())) before it was ready"))
        }
        switch worker.channel.read() {
        case .frame(.ready(let name, let version)):
            return .success((worker, name, version))
        case .frame(.refused(let message)):
            worker.shutDown()
            return .failure(WorkerStartError(message, isRefusal: true))
        default:
            worker.kill()
            return .failure(WorkerStartError("exited (\(worker.wait())) before it was ready"))
        }
    }

    private static func spawn(socket: Int32, log: Int32, output: Int32, memoryLimit: Int?) -> Result<pid_t, WorkerStartError> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, socket, PluginWorker.socketDescriptor)
        posix_spawn_file_actions_adddup2(&actions, log, OutcomeLog.workerDescriptor)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A process group of its own: Ctrl-C at a terminal reaches the host, which drains, and
        // not the workers, which would die mid-batch. Signals unblocked and at their defaults:
        // the plugin gets an ordinary process.
        posix_spawnattr_setpgroup(&attributes, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in SignalStateMachine.handled + [SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let arguments = ["batchman", PluginWorker.subcommand, "\(getpid())", "\(memoryLimit ?? 0)"]
        var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid = pid_t()
        let status = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, &cArguments, environ)
        guard status == 0 else { return .failure(WorkerStartError("cannot be started: \(String(cString: strerror(status)))")) }
        return .success(pid)
    }

    /// Kills the worker at once (a hung or broken one).
    func kill() {
        guard !isReaped else { return }
        Glibc.kill(pid, SIGKILL)
    }

    /// Waits for the worker to end and says how: "SIGSEGV", "exit status 0".
    @discardableResult
    func wait() -> String {
        close(channel.fileDescriptor)
        guard !isReaped else { return "ended" }
        isReaped = true
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return "ended" }
        }
        let signal = status & 0x7f
        if signal != 0 { return SignalStateMachine.name(signal) }
        return "exit status \((status >> 8) & 0xff)"
    }

    /// Ends the worker the orderly way: it sees its socket close, destroys the instance and
    /// exits. One that takes longer than `grace` is killed.
    func shutDown(grace: Duration = .seconds(5)) {
        guard !isReaped else { return }
        shutdown(channel.fileDescriptor, Int32(SHUT_RDWR))
        let deadline = FrameChannel.monotonicNanoseconds() + UInt64(max(0, grace.nanosecondsClamped))
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if FrameChannel.monotonicNanoseconds() > deadline {
                Glibc.kill(pid, SIGKILL)
                break
            }
            usleep(1000)  // a grace period in production code, not a test waiting for time
        }
        wait()
    }
}

/// Why a worker process could not serve its key.
struct WorkerStartError: Error {
    let message: String
    /// The plugin itself refused (load error or `create` refusal), as opposed to a worker that
    /// could not run.
    let isRefusal: Bool

    init(_ message: String, isRefusal: Bool = false) {
        self.message = message
        self.isRefusal = isRefusal
    }
}
