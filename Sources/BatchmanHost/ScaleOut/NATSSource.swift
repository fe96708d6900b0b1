import Batchman
import FoundationEssentials
import Synchronization

/// The NATS partitions this host owns, as a source of the input loop: on each turn it takes
/// the jobs their pull requests delivered (handed over by the connection's reader thread) into
/// the core, a partition at a time, and sends the pull requests there is room for. It has no
/// descriptor: the reader wakes the loop when deliveries wait.
final class NATSSource: InputSource {
    private let scaleOut: ScaleOut
    private let results: NATSResults
    private var lines: [ReadLine] = []
    private var sequences: [UInt64] = []
    private var redelivered: [Bool] = []
    private var isReading = true

    init(scaleOut: ScaleOut, results: NATSResults) {
        self.scaleOut = scaleOut
        self.results = results
    }

    var descriptor: Int32 { -1 }  // poll skips it
    func events(reading: Bool, loop: InputLoop) -> Int16 { 0 }
    func ready(_ revents: Int16, reading: Bool, loop: InputLoop) {}

    var deadline: UInt64? {
        scaleOut.table.withLock { $0.nearestPullDeadline }
    }

    func prepare(reading: Bool, loop: InputLoop) {
        guard isReading else { return }
        // Taken even at the memory bound: they are counted in flight already, and bounded by
        // the pulls that brought them (two fetches a partition).
        let delivered = scaleOut.takeDelivered()
        if !delivered.isEmpty {
            let readAt = Date()
            var start = 0
            while start < delivered.count {
                let partition = delivered[start].partition
                var end = start
                while end < delivered.count, delivered[end].partition == partition {
                    let job = delivered[end]
                    let bytes = job.payload[...]
                    lines.append(ReadLine(bytes: bytes, number: Int(job.sequence), end: 0, parsed: bytes.withUnsafeBufferPointer { JobLine.parse($0) }))
                    sequences.append(job.sequence)
                    redelivered.append(job.redelivered)
                    end += 1
                }
                let origin = LineOrigin(destination: results, scope: ScaleOut.scope(ofPartition: partition), connection: nil, isResumable: false,
                                        isReplay: false)
                loop.take(&lines, from: origin, readAt: readAt, sequences: sequences, redelivered: redelivered)
                sequences.removeAll(keepingCapacity: true)
                redelivered.removeAll(keepingCapacity: true)
                start = end
            }
        }
        if reading { scaleOut.sendPulls() }
    }

    func stopReading(loop: InputLoop) {
        isReading = false
        scaleOut.stop()
    }

    var isFinished: Bool { scaleOut.isFinished.load(ordering: .relaxed) }

    func close(loop: InputLoop) {}

    func abandon() {
        scaleOut.logger.log(.warning, "nats: results not stored within the drain's grace stay unacknowledged; those jobs are delivered again "
                            + "to the partitions' next owners")
        scaleOut.abandon()
    }
}
