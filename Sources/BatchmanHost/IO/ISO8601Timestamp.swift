import FoundationEssentials

/// `"2026-11-29T04:05:06.789Z"`: UTC with milliseconds, computed without a formatter.
enum ISO8601Timestamp {
    /// The formatted start of the last second seen: the results of one batch share their
    /// second (often their millisecond), so the calendar arithmetic runs once per batch.
    struct Cache {
        fileprivate var second = Int64.min
        /// `"YYYY-MM-DDTHH:MM:SS.`, quote included.
        fileprivate var prefix: [UInt8] = []

        init() {}
    }

    /// The bytes a timestamp takes, quotes included.
    static let length = 26

    static func append(_ date: Date, to output: inout [UInt8]) {
        var cache = Cache()
        ByteWriter.append(to: &output, bound: length) { write(secondsSince1970: date.timeIntervalSince1970, cache: &cache, to: &$0) }
    }

    /// Writes the time `seconds` after 1970, quoted; needs ``length`` bytes of room.
    static func write(secondsSince1970 seconds: Double, cache: inout Cache, to output: inout ByteWriter) {
        let milliseconds = Int64((seconds * 1000).rounded(.down))
        let second = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        if second != cache.second {
            cache.second = second
            cache.prefix = prefix(ofSecond: second)
        }
        output.write(cache.prefix)
        let millisecond = milliseconds - second * 1000
        output.write(UInt8(ascii: "0") + UInt8(millisecond / 100))
        output.write(UInt8(ascii: "0") + UInt8(millisecond / 10 % 10))
        output.write(UInt8(ascii: "0") + UInt8(millisecond % 10))
        output.write(UInt8(ascii: "Z"))
        output.write(UInt8(ascii: "\""))
    }

    private static func prefix(ofSecond second: Int64) -> [UInt8] {
        let days = second >= 0 ? second / 86_400 : (second - 86_399) / 86_400
        let secondOfDay = second - days * 86_400
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        var output: [UInt8] = [UInt8(ascii: "\"")]
        appendPadded(year, width: 4, to: &output)
        output.append(UInt8(ascii: "-"))
        appendPadded(month, width: 2, to: &output)
        output.append(UInt8(ascii: "-"))
        appendPadded(day, width: 2, to: &output)
        output.append(UInt8(ascii: "T"))
        appendPadded(secondOfDay / 3600, width: 2, to: &output)
        output.append(UInt8(ascii: ":"))
        appendPadded(secondOfDay / 60 % 60, width: 2, to: &output)
        output.append(UInt8(ascii: ":"))
        appendPadded(secondOfDay % 60, width: 2, to: &output)
        output.append(UInt8(ascii: "."))
        return output
    }

    /// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
    static func civilDate(daysSinceEpoch: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let shifted = daysSinceEpoch + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func appendPadded(_ value: Int64, width: Int, to output: inout [UInt8]) {
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        var remaining = value
        while divisor > 0 {
            output.append(UInt8(ascii: "0") + UInt8(remaining / divisor % 10))
            remaining %= divisor
            divisor /= 10
        }
    }
}
