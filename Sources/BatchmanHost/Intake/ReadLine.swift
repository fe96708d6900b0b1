/// A line read and parsed, waiting for the end of its read (or read back from the spool).
struct ReadLine {
    let bytes: ArraySlice<UInt8>
    let number: Int
    /// The input file's offset just after the line (0 when it is not from a file).
    let end: UInt64
    /// Nil for a line longer than --max-line-bytes, whose bytes were not kept.
    let parsed: JobLine?
    /// The too-long line's length, when known (a line replayed from the spool has lost it).
    var tooLongBy: Int?
}

/// Where a read's lines came from: where their results go, the scope their ids are unique in,
/// and what the spool keeps of them.
struct LineOrigin {
    let destination: any ResultDestination
    let scope: UInt32
    /// The client whose lines these are: told how many jobs it is owed results for.
    let connection: Connection?
    /// Lines of a file: the spool keeps where each ends, so that a restart resumes after them.
    let isResumable: Bool
    /// The results say `"replayed":true`: the lines come from the spool.
    let isReplay: Bool
}
