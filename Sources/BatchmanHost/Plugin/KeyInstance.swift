import Batchman

/// A key's plugin instance as the registry holds it: in the host's process (``PluginInstance``)
/// or in a worker process (``IsolatedInstance``).
protocol KeyInstance: AnyObject, Sendable {
    var key: String { get }
    var pluginName: String { get }
    /// The plugin's file (symbolic links resolved).
    var pluginPath: String { get }
    /// "EchoPlugin 1.0.0 (/path/libEchoPlugin.so)", and where it runs.
    var summary: String { get }
    /// Crashes and restarts, for an isolated instance.
    var isolationStatistics: IsolationStatistics? { get }
    func processor(workers: WorkerPool) -> any BatchProcessor<JobBytes, JobBytes>
    /// Takes it out of service; true if idle, and then the caller calls ``destroyNow()`` on the
    /// control thread. False: it is released when its running call returns.
    func close(destroyingLaterOn control: WorkerPool) -> Bool
    func destroyNow()
    /// Ends a call still running when the instance is given up on (a reload's timeout): an
    /// isolated instance's worker is killed; an in-process call cannot be stopped (false).
    func terminate() -> Bool
}

extension PluginInstance: KeyInstance {
    var pluginName: String { plugin.name }
    var pluginPath: String { plugin.path }
    var summary: String { "\(plugin.name) \(plugin.version) (\(plugin.path))" }
    var isolationStatistics: IsolationStatistics? { nil }

    func terminate() -> Bool { false }

    func processor(workers: WorkerPool) -> any BatchProcessor<JobBytes, JobBytes> {
        PluginProcessor(instance: self, workers: workers)
    }
}

extension IsolatedInstance: KeyInstance {
    var summary: String { "\(pluginName) \(pluginVersion) (\(pluginPath)) in a worker process" }
    var isolationStatistics: IsolationStatistics? { statistics }

    func terminate() -> Bool {
        terminate() as Void
        return true
    }

    func processor(workers: WorkerPool) -> any BatchProcessor<JobBytes, JobBytes> {
        processor()
    }
}
