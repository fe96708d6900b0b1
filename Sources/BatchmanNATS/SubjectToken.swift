/// A job key as one NATS subject token, and the partition it belongs to.
///
/// A token cannot hold `.` (the separator), `*` or `>` (wildcards), whitespace or control
/// bytes, and non-ASCII bytes are best kept out of subjects. So every byte of a key outside
/// `!`...`~` (0x21-0x7E), and `.`, `*`, `>` and `%` itself, is written `%XX` (two uppercase hex
/// digits of the UTF-8 byte); every other byte stays. `logger` stays `logger`, `eu.orders`
/// becomes `eu%2Eorders`, `clé` becomes `cl%C3%A9`. The encoding is one-to-one: ``decode(_:)``
/// gives the key back.
///
/// The partition of a key is FNV-1a-32 of its token mod the number of partitions: what a
/// server mapping `"jobs.*": "jobs.{{partition(N,1)}}.{{wildcard(1)}}"` computes for a message
/// published on `jobs.<token>`, so producers may publish either way.
public enum SubjectToken {
    public static func encode(_ key: String) -> String {
        let bytes = Array(key.utf8)
        guard bytes.contains(where: needsEscape) else { return key }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in bytes {
            if needsEscape(byte) {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The key a token stands for; nil if it is not one ``encode(_:)`` makes.
    public static func decode(_ token: String) -> String? {
        let decoded = token.removingPercentEncoding
        return decoded.flatMap { encode($0) == token ? $0 : nil }
    }

    static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x21 || byte > 0x7E || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "%")
    }

    /// FNV-1a, 32 bits, over the token's bytes.
    public static func fnv1a32(_ token: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in token.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return hash
    }

    /// The partition of `key` among `partitions`.
    public static func partition(ofKey key: String, partitions: Int) -> Int {
        Int(fnv1a32(encode(key)) % UInt32(partitions))
    }
}
