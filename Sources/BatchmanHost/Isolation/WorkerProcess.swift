import Batchman
import Glibc

/// A running plugin worker process (``PluginWorker``): its pid, a pidfd that says when it has
/// ended, and the host's end of its socket.
///
/// The worker is watched as a process, not only through its socket: a plugin that forks a
/// child (which inherits the socket) and then dies is seen dead at once. It leads a process
/// group of its own, and is killed with that whole group, so what the plugin started goes too.
final class WorkerProcess {
    let pid: pid_t
    let channel: FrameChannel
    /// The outcomes of the current batch, in memory shared with the worker.
    let outcomes: OutcomeLog.Reader
    /// The jobs of the current batch, in memory shared with the worker.
    let jobs: JobLog.Writer
    private let processDescriptor: Int32
    private var end: ProcessEnd?

    private init(pid: pid_t, processDescriptor: Int32, channel: FrameChannel, outcomes: OutcomeLog.Reader, jobs: JobLog.Writer) {
        self.pid = pid
        self.processDescriptor = processDescriptor
        self.channel = channel
        self.outcomes = outcomes
        self.jobs = jobs
    }

    deinit {
        close(processDescriptor)
    }

    /// Starts a worker and waits for it to load the plugin and create the key's instance.
    /// - Returns: the worker and the plugin's name and version, or why it could not start (it
    ///   died first, or the plugin refused).
    static func start(_ start: WorkerFrame.Start, memoryLimit: Int?, logger: BatchmanLogger) -> Result<(WorkerProcess, name: String, version: String), WorkerStartError> {
        func failure(_ what: String, _ error: Errno) -> WorkerStartError { WorkerStartError("cannot create its \(what): \(error)") }
        guard case .success(let (hostEnd, workerEnd)) = Syscall.socketPair() else { return .failure(failure("socket", .current)) }
        guard case .success(let output) = Syscall.pipe() else {
            close(hostEnd)
            close(workerEnd)
            return .failure(failure("output pipe", .current))
        }
        guard let log = OutcomeLog.Reader.make(), let jobs = JobLog.Writer.make() else {
            [hostEnd, workerEnd, output.read, output.write].forEach { _ = close($0) }
            return .failure(failure("shared memory", .current))
        }
        // Above 5, so that dup2 onto 3, 4 and 5 always makes new descriptors (without CLOEXEC).
        let workerSocket = (try? Syscall.duplicate(workerEnd, atLeast: 10).get()) ?? -1
        let workerLog = (try? Syscall.duplicate(log.fileDescriptor, atLeast: 10).get()) ?? -1
        let workerJobs = (try? Syscall.duplicate(jobs.fileDescriptor, atLeast: 10).get()) ?? -1
        close(workerEnd)
        let spawned = SelfSpawn.start(
            ["batchman", PluginWorker.subcommand, "\(getpid())", "\(memoryLimit ?? 0)", LogFormat.current.rawValue],
            descriptors: [(output.write, STDOUT_FILENO), (workerSocket, PluginWorker.socketDescriptor), (workerLog, OutcomeLog.workerDescriptor),
                          (workerJobs, JobLog.workerDescriptor)],
            // A process group of its own: Ctrl-C at a terminal reaches the host, which drains,
            // and not the workers, which would die mid-batch; and a kill takes what it started.
            ownProcessGroup: true)
        // The worker's ends are the worker's alone: held here, a worker that died would look
        // alive to anyone waiting on the socket.
        [workerSocket, workerLog, workerJobs, output.write].forEach { _ = close($0) }
        guard case .success(let pid) = spawned else {
            close(hostEnd)
            close(output.read)
            if case .failure(let error) = spawned { return .failure(WorkerStartError("cannot be started: \(error.reason)")) }
            preconditionFailure()
        }
        LineForwarder.start(reading: output.read, source: "plugin of key \"\(start.key)\" (worker \(pid))", logger: logger)
        guard case .success(let processDescriptor) = Syscall.processDescriptor(pid) else {
            Glibc.kill(-pid, SIGKILL)
            _ = Syscall.wait(for: pid)
            close(hostEnd)
            return .failure(failure("process descriptor", .current))
        }
        let worker = WorkerProcess(pid: pid, processDescriptor: processDescriptor,
                                   channel: FrameChannel(fileDescriptor: hostEnd, maxIncomingLength: WorkerFrame.maxLengthFromWorker),
                                   outcomes: log, jobs: jobs)
        guard worker.channel.write(.start(start)) else {
            return .failure(WorkerStartError("exited (\(worker.wait())) before it was ready"))
        }
        var answer = worker.read()
        // A pause asked for in create: no key has jobs yet, so there is nothing to pause.
        while case .frame(.pause) = answer { answer = worker.read() }
        switch answer {
        case .frame(.ready(let name, let version)):
            return .success((worker, name, version))
        case .frame(.refused(let code, let detail)):
            worker.shutDown()
            return .failure(WorkerStartError(detail, refusal: code))
        case .malformed(let what):
            worker.kill()
            return .failure(WorkerStartError("sent \(what) instead of saying it was ready (exited: \(worker.wait()))"))
        default:
            worker.kill()
            return .failure(WorkerStartError("exited (\(worker.wait())) before it was ready"))
        }
    }

    /// The next frame from the worker, watching the process: ``FrameChannel/ReadResult/processEnded``
    /// once it has died, whoever still holds its socket.
    func read(until deadline: UInt64? = nil, wakeEvery: Int32? = nil) -> FrameChannel.ReadResult {
        channel.read(until: deadline, watching: processDescriptor, wakeEvery: wakeEvery)
    }

    /// Bytes of memory the worker has resident now, shared memory included; nil once it is gone.
    var residentBytes: Int? {
        guard let statm = FileIO.read("/proc/\(pid)/statm"),
              let resident = String(decoding: statm, as: UTF8.self).split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Kills the worker and every process of its group at once (a hung or broken one).
    func kill() {
        guard end == nil else { return }
        Glibc.kill(-pid, SIGKILL)
    }

    /// Waits for the worker, which has ended or is ending, and says how: "SIGSEGV", "exit status
    /// 0". What is left of its process group (children the plugin started) is killed first,
    /// while the unreaped worker still holds the group's number, so no other group can have it.
    @discardableResult
    func wait() -> ProcessEnd {
        if let end { return end }
        close(channel.fileDescriptor)
        var ended = [pollfd(fd: processDescriptor, events: Int16(POLLIN), revents: 0)]
        if case .success(0) = Syscall.poll(&ended, milliseconds: 0) {
            // Still running (its socket closed first): it is the group's to go with.
            _ = Syscall.poll(&ended, milliseconds: 1000)
        }
        Glibc.kill(-pid, SIGKILL)
        let how = (try? Syscall.wait(for: pid).get()) ?? nil
        end = how ?? .signaled(SIGKILL)
        return end!
    }

    /// Ends the worker the orderly way: it sees its socket close, destroys the instance and
    /// exits. One that takes longer than `grace` is killed.
    func shutDown(grace: Duration = .seconds(5)) {
        guard end == nil else { return }
        shutdown(channel.fileDescriptor, Int32(SHUT_RDWR))
        var ended = [pollfd(fd: processDescriptor, events: Int16(POLLIN), revents: 0)]
        let deadline = Syscall.monotonicDeadline(after: grace)
        while case .success(0) = Syscall.poll(&ended, milliseconds: Syscall.pollMilliseconds(until: deadline)),
              Syscall.monotonicNanoseconds() < deadline {}
        if ended[0].revents == 0 { kill() }
        wait()
    }
}

/// Why a worker process could not serve its key.
struct WorkerStartError: Error {
    let message: String
    /// The plugin itself refused (a load error or a `create` refusal), as opposed to a worker
    /// that could not run: the ``PluginLoadError/Code`` it named.
    let refusal: String?

    init(_ message: String, refusal: String? = nil) {
        self.message = message
        self.refusal = refusal
    }
}
