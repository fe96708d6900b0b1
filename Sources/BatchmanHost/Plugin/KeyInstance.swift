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
}

extension PluginInstance: KeyInstance {
    var pluginName: String { plugin.name }
    var pluginPath: String { plugin.path }
    var summary: String { "\(plugin.name) \(plugin.version) (\(plugin.path))" }
    var isolationStatistics: IsolationStatistics? { nil }

    func processor(workers: WorkerPool) -> any BatchProcessor<JobBytes, JobBytes> {
        PluginProcessor(instance: self, workers: workers)
    }
}

extension IsolatedInstance: KeyInstance {
    var summary: String { "\(pluginName) \(pluginVersion) (\(pluginPath)) in a worker process" }
    var isolationStatistics: IsolationStatistics? { statistics }

    func processor(workers: WorkerPool) -> any BatchProcessor<JobBytes, JobBytes> {
        processor()
    }
}
