/// Finds the jobs of a batch that crash its plugin: which parts of the batch to run next, on a
/// fresh worker after each crash, until every job has an outcome or is known to crash alone.
///
/// Pure: the isolated instance runs each part it is given, and reports a part that crashed
/// (one that ran to its end needs no word: its jobs have their outcomes). Runs
/// go in rounds, breadth first:
///
/// 1. the whole batch; if it crashes, its unanswered jobs once more (the crash may have had
///    nothing to do with them: a worker killed from outside, a leak that ran out);
/// 2. a second crash splits them in halves, and each half runs;
/// 3. after a round, a part that crashed with one job unanswered names that job: it crashes
///    alone. The others are split again, except when every part of the round crashed: jobs that
///    crash are many, and halving pays two crashes for each one found, so the rest run one job at
///    a time, which pays one per job that crashes and none for the others.
///
/// One poisoned job in 1,000 costs about 12 crashes; 16 jobs that all crash cost 20 runs (the
/// batch twice, two halves, sixteen alone), not the 31 of halving alone. Outcomes the plugin
/// emitted before a crash stand, so no part holds a job that was answered.
struct PoisonSearch: Equatable {
    enum Step: Equatable {
        /// Run these jobs (positions in the batch) as one call.
        case run([Int])
        /// Every job has its outcome, or was found to crash alone.
        case finished
    }

    private enum Stage: Equatable {
        /// The whole batch, not crashed yet.
        case first
        /// The whole batch's unanswered jobs, after one crash.
        case again
        /// Parts known to hold a job that crashes.
        case halving
        case oneByOne
    }

    private var stage = Stage.first
    /// The round being run, and the parts of it still to run.
    private var round: [[Int]]
    private var nextPart = 0
    /// The round's parts that crashed, with their unanswered jobs.
    private var crashed: [[Int]] = []
    /// Jobs found to crash alone, in the order they were found.
    private(set) var poisoned: [Int] = []

    init(count: Int) {
        round = count > 0 ? [Array(0..<count)] : []
    }

    /// What to run next.
    mutating func next() -> Step {
        while nextPart == round.count {
            guard let following = nextRound() else { return .finished }
            round = following
            nextPart = 0
            crashed = []
        }
        nextPart += 1
        return .run(round[nextPart - 1])
    }

    /// The part last returned by ``next()`` crashed its worker; `unanswered` are its jobs that
    /// have no outcome. Returns the job found to crash alone, if this run named one.
    mutating func crashed(unanswered: [Int]) -> Int? {
        guard !unanswered.isEmpty else { return nil }  // everything was answered before it died
        if unanswered.count == 1, stage != .first {
            poisoned.append(unanswered[0])
            return unanswered[0]
        }
        crashed.append(unanswered)
        return nil
    }

    /// The round after the one just run, or nil if nothing is left to run.
    private mutating func nextRound() -> [[Int]]? {
        guard !crashed.isEmpty else { return nil }
        let everyPartCrashed = crashed.count == round.count && round.count > 1
        switch stage {
        case .first:
            stage = .again
            return crashed
        case .again, .halving:
            if everyPartCrashed {
                stage = .oneByOne
                return crashed.flatMap { $0.map { [$0] } }
            }
            stage = .halving
            return crashed.flatMap { part in [Array(part[..<(part.count / 2)]), Array(part[(part.count / 2)...])] }
        case .oneByOne:
            return nil  // a job run alone that crashes is named; nothing is left
        }
    }
}
