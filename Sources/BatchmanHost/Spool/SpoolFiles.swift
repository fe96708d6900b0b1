import FoundationEssentials

/// Where a spool keeps its segments.
enum SpoolFiles {
    /// `DIR/segment-<N>.log`, N zero-padded so that names sort in creation order.
    static func segmentPath(in directory: String, number: UInt64) -> String {
        let digits = String(number)
        return "\(directory)/segment-\(String(repeating: "0", count: max(0, 20 - digits.count)))\(digits).log"
    }

    /// The segments in `directory`, oldest first.
    static func segments(in directory: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("segment-") && $0.hasSuffix(".log") }.sorted().map { "\(directory)/\($0)" }
    }
}
