@testable import BatchmanHost
import Testing

/// What a worker sends is untrusted: a frame decodes only if it is exactly one frame of its kind.
@Suite struct WorkerFrameTests {
    static let frames: [WorkerFrame] = [
        .start(.init(pluginPath: "/p.so", key: "k", config: "{}", debug: true, maxResultBytes: 64, manifestDirectory: "/etc/batchman")),
        .batch(id: 7, token: 99, key: "k", deadline: 123_456_789, count: 1, length: 19),
        .pause(key: "k", milliseconds: 5000),
        .ready(name: "echo", version: "1.0"),
        .refused(code: "create refused", detail: "no"),
        .done(token: 99, returned: 2, message: "busy"),
    ]

    @Test(arguments: frames)
    func everyFrameDecodesToItself(frame: WorkerFrame) {
        let encoded = frame.encoded
        #expect(WorkerFrame.decode(encoded[4...]) == frame)
    }

    @Test(arguments: frames)
    func aFrameWithAByteMissingOrOneLeftOverIsRefused(frame: WorkerFrame) {
        let body = frame.encoded[4...]
        #expect(WorkerFrame.decode(body.dropLast()) == nil)
        #expect(WorkerFrame.decode(body + [0]) == nil)
    }

    @Test func aDoneOfOneByteIsNotADone() {
        #expect(WorkerFrame.decode([13][...]) == nil)
        #expect(WorkerFrame.decode([13, 0xde, 0xad, 0xbe, 0xef][...]) == nil)
    }

    @Test func anUnknownKindIsRefused() {
        #expect(WorkerFrame.decode([12][...]) == nil)
        #expect(WorkerFrame.decode([15][...]) == nil)
        #expect(WorkerFrame.decode([][...]) == nil)
    }

    @Test func aJobCountThatCannotFitIsNotBelieved() {
        // 16 header bytes a job at least: 2 jobs do not fit in 31 bytes.
        #expect(WorkerFrame.decode(WorkerFrame.batch(id: 1, token: 2, key: "k", deadline: 0, count: 2, length: 32).encoded[4...]) != nil)
        #expect(WorkerFrame.decode(WorkerFrame.batch(id: 1, token: 2, key: "k", deadline: 0, count: 2, length: 31).encoded[4...]) == nil)
        #expect(WorkerFrame.decode(WorkerFrame.batch(id: 1, token: 2, key: "k", deadline: 0, count: 1, length: .max).encoded[4...]) == nil)
    }
}
