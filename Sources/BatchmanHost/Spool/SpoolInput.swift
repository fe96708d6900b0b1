import Glibc

/// Which file a spool was reading with `--input`, so that a restart resumes only that file: the
/// device and inode it was on, and a checksum of its first bytes (up to 4 KiB, as many as it
/// had when the spool first read it). A file replaced under the same name (another inode), cut
/// shorter than where reading stopped, or rewritten in place (other first bytes) is read from
/// its start instead.
struct SpoolInput: Equatable, Sendable {
    static let fingerprintBytes = 4096

    let device: UInt64
    let inode: UInt64
    let fingerprintLength: UInt32
    let fingerprint: UInt32

    /// The identity of the file open as `descriptor`; nil if it is not a regular file.
    static func of(_ descriptor: Int32) -> SpoolInput? {
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
        let (length, checksum) = firstBytesChecksum(descriptor, count: min(fingerprintBytes, Int(status.st_size)))
        return SpoolInput(device: UInt64(status.st_dev), inode: UInt64(status.st_ino), fingerprintLength: UInt32(length), fingerprint: checksum)
    }

    /// Why the file open as `descriptor` is not this one, read up to `offset`; nil if it is.
    func mismatch(_ descriptor: Int32, offset: UInt64) -> String? {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return "it cannot be examined: \(Errno.current)" }
        guard UInt64(status.st_dev) == device, UInt64(status.st_ino) == inode else {
            return "it is another file than the one the spool was reading (another inode)"
        }
        guard UInt64(status.st_size) >= offset else {
            return "it is \(status.st_size) bytes, shorter than where reading stopped (byte \(offset))"
        }
        let (length, checksum) = Self.firstBytesChecksum(descriptor, count: Int(fingerprintLength))
        guard length == Int(fingerprintLength), checksum == fingerprint else {
            return "its first \(fingerprintLength) bytes are not those of the file the spool was reading"
        }
        return nil
    }

    private static func firstBytesChecksum(_ descriptor: Int32, count: Int) -> (Int, UInt32) {
        var bytes = [UInt8](repeating: 0, count: count)
        let read = (try? bytes.withUnsafeMutableBytes { Syscall.read(descriptor, into: $0, at: 0) }.get()) ?? 0
        return (read, CRC32C.checksum(Array(bytes.prefix(read))))
    }
}
