@testable import BatchmanHost
import Batchman
import Foundation
import Testing

/// The operator-facing pieces without a process: request heads, histograms, the exposition,
/// log lines, the progress line, the host's phases.
@Suite struct OperatingUnitTests {
    func parse(_ text: String) -> HTTPRequestHead.Parsed { HTTPRequestHead.parse(ArraySlice(text.utf8)) }

    @Test func readsAGetAndItsPathWithoutTheQuery() {
        #expect(parse("GET /metrics?debug=1 HTTP/1.1\r\nHost: x\r\n\r\n") == .request(HTTPRequestHead(method: "GET", path: "/metrics")))
        #expect(parse("GET /health HTTP/1.0\n\n") == .request(HTTPRequestHead(method: "GET", path: "/health")), "bare LF lines")
        #expect(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n") == .incomplete)
    }

    @Test func refusesWhatIsNotAnHTTPOneRequestHead() {
        for bad in ["GET metrics HTTP/1.1\r\n\r\n", "get / HTTP/1.1\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "\r\n\r\n"] {
            guard case .malformed = parse(bad) else {
                Issue.record("accepted \(bad.debugDescription)")
                continue
            }
        }
        guard case .malformed = parse("GET /" + String(repeating: "x", count: 9000)) else {
            Issue.record("a head past 8 KiB without its end is still read")
            return
        }
    }

    @Test func countsObservationsInTheFirstBucketThatHoldsThem() {
        let histogram = Histogram(bounds: [1, 5, 10])
        histogram.observe([0.5, 1, 3, 10, 11])
        histogram.observe(5)
        #expect(histogram.snapshot == Histogram.Counts(buckets: [2, 2, 1, 1], sum: 30.5, count: 6))
    }

    @Test func rendersCumulativeBucketsAndEscapesLabels() {
        let metrics = HostMetrics()
        metrics.entry(named: "a\"b").batchSize.observe([1, 3, 2000])
        var statistics = BatcherStatistics()
        statistics.accepted = 3
        statistics.batchesByReason[.size] = 1
        let text = PrometheusExposition.render(PrometheusExposition.Snapshot(
            perKey: ["k": statistics], invalidLines: 2, isolation: [:], reloadsSucceeded: 1, reloadsFailed: 0, outputPauses: 0, spoolBytes: nil,
            connections: nil, orphaned: 0, histograms: metrics.all, entryName: { _ in "a\"b" }))

        #expect(text.contains(#"batchman_jobs_accepted_total{key="a\"b"} 3"#))
        #expect(text.contains(#"batchman_batches_total{key="a\"b",reason="size"} 1"#))
        #expect(text.contains(#"batchman_batch_size_bucket{key="a\"b",le="1"} 1"#))
        #expect(text.contains(#"batchman_batch_size_bucket{key="a\"b",le="5"} 2"#))
        #expect(text.contains(#"batchman_batch_size_bucket{key="a\"b",le="+Inf"} 3"#))
        #expect(text.contains(#"batchman_batch_size_sum{key="a\"b"} 2004"#))
        #expect(text.contains(#"batchman_jobs_failed_total{reason="invalid_input"} 2"#))
        #expect(text.contains(#"batchman_reloads_total{result="ok"} 1"#))
        #expect(text.contains("# TYPE batchman_batch_size histogram"))
    }

    @Test func writesAJSONLogLineWithOnlyTheFieldsThatApply() throws {
        let line = LogFormat.jsonLine(level: .warning, message: "say \"hi\"\n", context: .init(key: "k", reload: 3),
                                      at: Date(timeIntervalSince1970: 1_764_600_000.5))
        #expect(line == #"{"time":"2025-12-01T14:40:00.500Z","level":"warning","message":"say \"hi\"\n","key":"k","reload":3}"# + "\n")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["plugin"] == nil)
    }

    @Test func drawsTheProgressLineWithAnEstimate() {
        #expect(ProgressReporter.line(read: 25_000_000, of: 100_000_000, lines: 250_000, results: 200_000, elapsed: 2)
                == "batchman: 25% of 100.0 MB, 125,000 lines/s, 200,000 results, 0:06 left")
        #expect(ProgressReporter.line(read: 100, of: 100, lines: 1, results: 1, elapsed: 1).hasSuffix("reading done"))
        #expect(ProgressReporter.clock(3725) == "1:02:05")
        #expect(ProgressReporter.grouped(1_234_567) == "1,234,567")
    }

    @Test func isReadyOnlyWhileReadingAndHealthyUntilTheDrain() {
        let status = HostStatus(notifier: nil)
        #expect(status.isHealthy && !status.isReady)
        status.ready(status: "")
        #expect(status.isReady)
        status.reloading()
        #expect(status.phase == .reloading && status.isReady)
        status.reloaded()
        #expect(status.phase == .ready)
        status.draining()
        #expect(!status.isHealthy && !status.isReady)
        status.reloaded()
        #expect(status.phase == .draining, "a reload that ends during the drain does not make the host ready again")
    }
}
