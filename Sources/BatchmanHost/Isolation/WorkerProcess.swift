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
        // A process group of its own: Ctrl-C at a terminal reaches the host, which drains, and
        // not the workers, which would die mid-batch.
        SelfSpawn.start(["batchman", PluginWorker.subcommand, "\(getpid())", "\(memoryLimit ?? 0)"],
                        descriptors: [(output, STDOUT_FILENO), (socket, PluginWorker.socketDescriptor), (log, OutcomeLog.workerDescriptor)],
                        ownProcessGroup: true)
            .mapError { WorkerStartError("cannot be started: \($0.reason)") }
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
