import Batchman
import CBatchmanPlugin
import CBatchmanSystem
import Glibc

/// The worker process of an isolated key: `batchman __worker PARENT MEMORY_LIMIT`, started by the
/// host with its end of a socket as descriptor 3. It loads the plugin, creates the key's
/// instance, and serves batches one at a time over the socket (``WorkerFrame``), streaming each
/// outcome as the plugin emits it. The plugin sees exactly the ABI it sees in-process.
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
        if let limit = arguments.dropFirst().first.flatMap(Int.init), limit > 0 {
            // RLIMIT_DATA counts private writable memory (malloc, anonymous maps): what a leak
            // grows. RLIMIT_AS would count the address space that runtimes only reserve.
            var bound = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
            setrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &bound)
        }
        closeInheritedDescriptors()
        let channel = FrameChannel(fileDescriptor: socketDescriptor)
        let log = OutcomeLog.Writer(fileDescriptor: OutcomeLog.workerDescriptor)
        guard case .frame(.start(let path, let key, let config, let debug)) = channel.read() else { _exit(2) }
        let instance: PluginInstance
        do throws(PluginLoadError) {
            let plugin = try PluginLoader(manifestDirectory: "/").load(path, forKey: key)
            instance = try plugin.createInstance(plugin: path, key: key, config: config, debug: debug, logger: .standardError)
        } catch {
            _ = channel.write(.refused(message: error.description))
            _exit(0)
        }
        guard channel.write(.ready(name: instance.plugin.name, version: instance.plugin.version)) else { _exit(0) }
        while case .frame(.batch(let id, let batchKey, let jobs)) = channel.read() {
            serve(Batch(id: id, key: batchKey, jobs: jobs.map(Self.job(batchKey)), reason: .size), by: instance, over: channel, log: log)
        }
        // The host closed the socket: it is done with this instance.
        if instance.close(destroyingLaterOn: WorkerPool(name: "batchman-worker-control", threads: 1)) { instance.destroyNow() }
        _exit(0)
    }

    private static func job(_ key: String) -> (WorkerFrame.Job) -> Job<JobBytes> {
        { Job(id: String(decoding: $0.id, as: UTF8.self), key: key, payload: $0.payload[...], attempt: Int($0.attempt)) }
    }

    /// Calls the plugin; each outcome it emits goes into the shared outcome log at once, so it
    /// survives a crash later in the call (or, if the log cannot grow, over the socket). Then
    /// the outcomes of jobs it did not emit, then `done`.
    private static func serve(_ batch: Batch<JobBytes>, by instance: PluginInstance, over channel: FrameChannel, log: OutcomeLog.Writer) {
        log.reset()
        func record(_ index: Int, _ status: Int32, _ data: UnsafeRawBufferPointer) {
            if !log.append(index: index, status: status, data: data) {
                _ = channel.write(.outcome(index: UInt32(index), status: status, data: Array(data)))
            }
        }
        let (outcomes, emitted) = instance.process(batch) { index, status, data in record(index, status, data) }
        for (index, outcome) in outcomes.enumerated() where !emitted[index] {
            let status = outcome.isRetryable ? BM_RETRY : BM_FAILED
            Array((outcome.errorMessage ?? "").utf8).withUnsafeBytes { record(index, status, $0) }
        }
        _ = channel.write(.done)
    }

    /// Closes every descriptor but standard input, output, error, the socket and the outcome
    /// log: the host's others (its input file, other workers' sockets) are not the plugin's.
    private static func closeInheritedDescriptors() {
        guard let directory = opendir("/proc/self/fd") else { return }
        var descriptors: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let descriptor = Int32(name), descriptor > OutcomeLog.workerDescriptor { descriptors.append(descriptor) }
        }
        let own = dirfd(directory)
        for descriptor in descriptors where descriptor != own { close(descriptor) }
        closedir(directory)
    }
}
