import Synchronization

/// What `--http` serves: `/metrics`, `/health`, `/ready`; anything else is 404.
final class OperatorEndpoints: Sendable {
    let status: HostStatus
    /// Renders `/metrics`; set once the run has its configuration (before that, the build's
    /// information alone).
    /// (In a struct: see ``Callback``.)
    private let metrics = Mutex<Renderer?>(nil)

    private struct Renderer: Sendable {
        let render: @Sendable () -> String
    }

    init(status: HostStatus) {
        self.status = status
    }

    func serveMetrics(with render: @escaping @Sendable () -> String) {
        metrics.withLock { $0 = Renderer(render: render) }
    }

    func respond(to request: HTTPRequestHead) -> HTTPServer.Response {
        switch request.path {
        case "/metrics":
            let render = metrics.withLock { $0 }
            let body = render?.render() ?? PrometheusExposition.render(.empty)
            return HTTPServer.Response(status: 200, contentType: PrometheusExposition.contentType, body: body)
        case "/health":
            return status.isHealthy ? HTTPServer.Response(status: 200, body: "ok\n") : HTTPServer.Response(status: 503, body: "draining\n")
        case "/ready":
            if status.isReady { return HTTPServer.Response(status: 200, body: "ready\n") }
            return HTTPServer.Response(status: 503, body: status.phase == .draining ? "draining\n" : "starting\n")
        default:
            return HTTPServer.Response(status: 404, body: "not found: the paths are /metrics, /health and /ready\n")
        }
    }
}

extension PrometheusExposition.Snapshot {
    /// Before the run has counted anything.
    static var empty: Self {
        Self(perKey: [:], invalidLines: 0, isolation: [:], reloadsSucceeded: 0, reloadsFailed: 0, outputPauses: 0, spoolBytes: nil,
             connections: nil, orphaned: 0, histograms: [:], entryName: { _ in Manifest.defaultKey })
    }
}
