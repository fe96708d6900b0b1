import Batchman
import CBatchmanPlugin
import CBatchmanSystem
import Glibc
import Synchronization

/// The worker process of an isolated key: `batchman __worker PARENT MEMORY_LIMIT LOG_FORMAT`, started by the
/// host with its end of a socket as descriptor 3, the shared outcome log as 4 and the shared job
/// log as 5. It loads the plugin, creates the key's instance, and serves batches one at a time
/// (announced over the socket, ``WorkerFrame``; their jobs read in place from the job log),
/// publishing each outcome in the outcome log as the plugin emits it. The plugin sees exactly
/// the ABI it sees in-process.
public enum PluginWorker {
    /// The hidden subcommand that runs a worker.
    public static let subcommand = "__worker"
    static let socketDescriptor: Int32 = 3

    /// Runs the worker until the host closes the socket; never returns.
    public static func main(_ arguments: [String]) -> Never {
        // Die with the host, even by SIGKILL; the check after closes the race with a host that
        // died before the call.
        _ = bm_set_parent_death_signal(SIGKILL)
        if let parent = arguments.first.flatMap(Int32.init), getppid() != parent { _exit(0) }
        // A closed log (the host's standard error is a pipe nobody reads any more) is an error
        // from write, as it is in the host, not a death before the worker is ready.
        signal(SIGPIPE, SIG_IGN)
        if let limit = arguments.dropFirst().first.flatMap(Int.init), limit > 0 {
            // RLIMIT_DATA counts private writable memory (malloc, anonymous maps): what a leak
            // grows, and allocations fail at it. RLIMIT_AS would count the address space that
            // runtimes only reserve. Shared memory is not counted here; the host watches the
            // worker's resident size for it (IsolatedInstance).
            var bound = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
            setrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &bound)
        }
        // The host's --log-format: a plugin's log lines look alike wherever it runs.
        let logFormat = arguments.dropFirst(2).first.flatMap(LogFormat.init(rawValue:)) ?? .text
        closeInheritedDescriptors()
        let channel = FrameChannel(fileDescriptor: socketDescriptor)
        let log = OutcomeLog.Writer(fileDescriptor: OutcomeLog.workerDescriptor)
        let jobLog = JobLog.Reader(fileDescriptor: JobLog.workerDescriptor)
        guard case .frame(.start(let start)) = channel.read() else { _exit(2) }
        // The plugin may pause from any of its threads, while this one writes `done`: one
        // writer at a time keeps frames whole.
        let outbox = Outbox(fileDescriptor: socketDescriptor)
        let send = outbox.send
        // A pause goes to the host, which owns the key's batches; whether it knows the key is
        // not known here, so the plugin is told 0.
        let pauser = KeyPauser()
        pauser.connect { key, duration in
            _ = send(.pause(key: key, milliseconds: UInt64(duration.nanosecondsClamped / 1_000_000)))
            return true
        }
        let instance: PluginInstance
        do throws(PluginLoadError) {
            let plugin = try PluginLoader(manifestDirectory: "/").load(start.pluginPath, forKey: start.key)
            instance = try plugin.createInstance(plugin: start.pluginPath, key: start.key, config: start.config, debug: start.debug,
                                                 logger: logFormat.logger(), maxResultBytes: start.maxResultBytes,
                                                 manifestDirectory: start.manifestDirectory, pauser: pauser)
        } catch {
            _ = send(.refused(code: error.code.description, detail: error.detail))
            _exit(0)
        }
        guard send(.ready(name: instance.plugin.name, version: instance.plugin.version)) else { _exit(0) }
        while case .frame(.batch(let id, let token, let batchKey, let deadline, let count, let length)) = channel.read() {
            let served = jobLog.withJobs(count: Int(count), length: Int(length)) { jobs in
                serve(id, key: batchKey, jobs: jobs, deadline: deadline, by: instance, log: log)
            }
            // Jobs that are not what their frame says come from a broken host: nothing to serve.
            guard let (returned, message) = served else { _exit(2) }
            guard send(.done(token: token, returned: returned, message: message)) else { break }
        }
        // The host closed the socket: it is done with this instance.
        if instance.close(destroyingLaterOn: WorkerPool(name: "batchman-worker-control", threads: 1)) { instance.destroyNow() }
        _exit(0)
    }

    /// Frames to the host, one writer at a time (writing keeps no state beyond the socket, so
    /// this channel and the reading one share it).
    private final class Outbox: Sendable {
        private let channel: Mutex<FrameChannel>
        init(fileDescriptor: Int32) { channel = Mutex(FrameChannel(fileDescriptor: fileDescriptor)) }
        func send(_ frame: WorkerFrame) -> Bool { channel.withLock { $0.write(frame) } }
    }

    /// Calls the plugin; each outcome it emits goes into the shared outcome log at once, so it
    /// survives a crash later in the call. A job whose outcome did not fit in `maxResultBytes`
    /// gets a short failure record instead. Returns what `process_batch` returned, for the jobs
    /// the plugin did not emit (the host gives them their outcome).
    private static func serve(
        _ batchId: UInt64, key: String, jobs: UnsafeBufferPointer<bm_job>, deadline: UInt64, by instance: PluginInstance, log: OutcomeLog.Writer
    ) -> (Int32, String) {
        log.reset()
        let collector = EmitCollector(count: jobs.count, maxResultBytes: instance.maxResultBytes) { index, status, data, detail in
            log.append(index: index, status: status, data: data, detail: detail)
        }
        let (returned, message) = instance.call(batchId: batchId, key: key, jobs: jobs, collector: collector, deadline: deadline)
        for index in jobs.indices where collector.wasTooLarge(index) {
            let text = EmitCollector.tooLargeMessage(collector.tooLargeLength(index), instance.maxResultBytes)
            Array(text.utf8).withUnsafeBytes { _ = log.append(index: index, status: BM_FAILED, data: $0) }
        }
        return (returned, message)
    }

    /// Closes every descriptor but standard input, output, error, the socket and the two
    /// logs: the host's others (its input file, other workers' sockets) are not the plugin's.
    private static func closeInheritedDescriptors() {
        guard let directory = opendir("/proc/self/fd") else { return }
        var descriptors: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let descriptor = Int32(name), descriptor > JobLog.workerDescriptor { descriptors.append(descriptor) }
        }
        let own = dirfd(directory)
        for descriptor in descriptors where descriptor != own { close(descriptor) }
        closedir(directory)
    }
}
