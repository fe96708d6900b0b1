import Batchman
import Dispatch
import Synchronization

/// The `processes` worker processes of a shared isolated entry (`"instances": "shared"`,
/// `"isolation": "process"`): every key of the entry is served by them, each batch going to an
/// idle worker, started on demand up to `processes` (and `--max-processes`). Each worker is an
/// ``IsolatedInstance``: a crash costs only the batch it was in, and a hang only its worker.
final class WorkerPoolInstances: Sendable {
    typealias Make = InstanceCell.Make

    /// The decisions; batches that wait are tokens.
    struct StateMachine: Equatable {
        enum Member: Equatable {
            case starting
            case idle
            case busy
            /// Its place is free: a start failed, or it was never used.
            case absent
        }

        enum Submit: Equatable {
            case run(member: Int)
            /// Start this member; the batch waits in the queue for the first worker free.
            case start(member: Int)
            case queued
            case closed
        }

        enum Next: Equatable {
            case run(token: UInt64, member: Int)
            case none
            /// No worker can start and none is running: these batches fail with the reason.
            case fail([UInt64])
        }

        let size: Int
        private(set) var members: [Member] = []
        private(set) var queue: [UInt64] = []
        private(set) var isClosed = false

        init(size: Int) { self.size = size }

        var running: Int { members.count { $0 == .idle || $0 == .busy } }

        mutating func submit(_ token: UInt64) -> Submit {
            guard !isClosed else { return .closed }
            if let member = members.firstIndex(of: .idle) {
                members[member] = .busy
                return .run(member: member)
            }
            queue.append(token)
            // One more worker for every batch that waits, up to the entry's number.
            let starting = members.count { $0 == .starting }
            guard starting < queue.count else { return .queued }
            if let member = members.firstIndex(of: .absent) {
                members[member] = .starting
                return .start(member: member)
            }
            guard members.count < size else { return .queued }
            members.append(.starting)
            return .start(member: members.count - 1)
        }

        /// A member's worker is ready (`ok`) or could not start.
        mutating func started(_ member: Int, ok: Bool) -> Next {
            guard !isClosed else { return .none }
            members[member] = ok ? .idle : .absent
            if ok { return dispatch(to: member) }
            // Nothing else will take the waiting batches: they fail.
            guard running == 0, !members.contains(.starting), !queue.isEmpty else { return .none }
            defer { queue = [] }
            return .fail(queue)
        }

        /// A key's first job has come: start the first worker, if none is there or starting.
        mutating func warm() -> Int? {
            guard !isClosed, !members.contains(where: { $0 != .absent }) else { return nil }
            if let member = members.firstIndex(of: .absent) {
                members[member] = .starting
                return member
            }
            guard size > 0 else { return nil }
            members.append(.starting)
            return members.count - 1
        }

        /// A worker started outside the pool's own demand (to prove the configuration) joins it.
        mutating func adopt() -> Int {
            members.append(.idle)
            return members.count - 1
        }

        /// A member answered its batch.
        mutating func ended(_ member: Int) -> Next {
            guard !isClosed, members.indices.contains(member) else { return .none }
            members[member] = .idle
            return dispatch(to: member)
        }

        private mutating func dispatch(to member: Int) -> Next {
            guard !queue.isEmpty else { return .none }
            members[member] = .busy
            return .run(token: queue.removeFirst(), member: member)
        }

        /// Out of service: the batches still queued, to fail.
        mutating func close() -> [UInt64] {
            isClosed = true
            defer { queue = [] }
            return queue
        }
    }

    private struct State {
        var machine: StateMachine
        var instances: [Int: any KeyInstance] = [:]
        var waiting: [UInt64: (Batch<JobBytes>, BatchCompletion)] = [:]
        var nextToken: UInt64 = 0
        /// Why the last start failed, for the batches that fail because of it.
        var lastFailure: String?
    }

    let key: String
    private let workers: WorkerPool
    private let make: Make
    private let state: Mutex<State>

    init(key: String, size: Int, workers: WorkerPool, make: @escaping Make) {
        self.key = key
        self.workers = workers
        self.make = make
        state = Mutex(State(machine: StateMachine(size: size)))
    }

    /// The worker processes running now (started and not gone).
    var instances: [any KeyInstance] { state.withLock { Array($0.instances.values) } }

    func run(_ batch: Batch<JobBytes>, completion: @escaping BatchCompletion) {
        let (submit, instance) = state.withLock { state -> (StateMachine.Submit, (any KeyInstance)?) in
            state.nextToken += 1
            let submit = state.machine.submit(state.nextToken)
            switch submit {
            case .start, .queued: state.waiting[state.nextToken] = (batch, completion)
            case .run, .closed: break
            }
            if case .run(let member) = submit { return (submit, state.instances[member]) }
            return (submit, nil)
        }
        switch submit {
        case .run(let member): hand(batch, to: instance!, member: member, completion: completion)
        case .start(let member): start(member)
        case .queued: break
        case .closed: completion(.failure(InstanceUnavailable(message: "the workers of key \"\(key)\" are out of service: its configuration was replaced")))
        }
    }

    /// Starts the first worker, if none is there or starting.
    func warm() {
        if let member = state.withLock({ $0.machine.warm() }) { start(member) }
    }

    /// Starts one worker now and waits for it (`check`, a reload that proves its configuration);
    /// the error if it could not start.
    func startOneNow() -> PluginLoadError? {
        let done = DispatchSemaphore(value: 0)
        let started = Mutex<Result<any KeyInstance, PluginLoadError>?>(nil)
        make { result in
            started.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        switch started.withLock({ $0 }) {
        case .failure(let error)?:
            return error
        case .success(let instance)?:
            state.withLock { state in state.instances[state.machine.adopt()] = instance }
            return nil
        case nil:
            return nil
        }
    }

    private func start(_ member: Int) {
        make { [self] result in
            let (next, failure, unwanted) = state.withLock { state -> (StateMachine.Next, String?, (any KeyInstance)?) in
                switch result {
                case .success(let instance):
                    // Closed while it started: it was never handed out, so it goes now.
                    if state.machine.isClosed { return (.none, nil, instance) }
                    state.instances[member] = instance
                case .failure(let error):
                    state.lastFailure = error.description
                }
                return (state.machine.started(member, ok: result.isSuccess), state.lastFailure, nil)
            }
            if let unwanted, unwanted.close(destroyingLaterOn: workers) { unwanted.destroyNow() }
            perform(next, failure: failure)
        }
    }

    private func perform(_ next: StateMachine.Next, failure: String?) {
        switch next {
        case .none:
            break
        case .run(let token, let member):
            let (waiting, instance) = state.withLock { ($0.waiting.removeValue(forKey: token), $0.instances[member]) }
            guard let (batch, completion) = waiting, let instance else { return }
            hand(batch, to: instance, member: member, completion: completion)
        case .fail(let tokens):
            let completions = state.withLock { state in tokens.compactMap { state.waiting.removeValue(forKey: $0)?.1 } }
            let message = failure ?? "the workers of key \"\(key)\" could not start"
            for completion in completions { completion(.failure(InstanceUnavailable(message: message))) }
        }
    }

    private func hand(_ batch: Batch<JobBytes>, to instance: any KeyInstance, member: Int, completion: @escaping BatchCompletion) {
        instance.run(batch, on: workers) { [self] outcomes in
            let next = state.withLock { $0.machine.ended(member) }
            completion(outcomes)
            perform(next, failure: nil)
        }
    }

    /// Out of service: fails what waits, and returns the workers to release.
    func close() -> [any KeyInstance] {
        let (instances, completions) = state.withLock { state -> ([any KeyInstance], [BatchCompletion]) in
            let tokens = state.machine.close()
            let completions = tokens.compactMap { state.waiting.removeValue(forKey: $0)?.1 }
            defer { state.instances = [:] }
            return (Array(state.instances.values), completions)
        }
        for completion in completions {
            completion(.failure(InstanceUnavailable(message: "the workers of key \"\(key)\" are out of service: its configuration was replaced")))
        }
        return instances
    }
}
