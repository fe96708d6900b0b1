import Glibc

/// How long an ELF file says it is: the end of its furthest segment or section table. A
/// shared library shorter than that is still being written (or cut short), and `dlopen` of it
/// would fault on the missing pages and kill the process instead of failing.
enum ELFSize {
    /// The bytes the 64-bit ELF file at `path` needs, or nil if it is not one (then `dlopen`
    /// says what it is).
    static func required(byFileAt path: String) -> Int? {
        guard case .success(let descriptor) = Syscall.open(path, O_RDONLY) else { return nil }
        defer { close(descriptor) }
        func read(_ count: Int, at offset: Int) -> [UInt8]? {
            var bytes = [UInt8](repeating: 0, count: count)
            let got = bytes.withUnsafeMutableBytes { Syscall.read(descriptor, into: $0, at: offset) }
            return (try? got.get()) == count ? bytes : nil
        }
        func integer(_ bytes: [UInt8], _ offset: Int, _ size: Int) -> Int {
            (0..<size).reversed().reduce(0) { $0 << 8 | Int(bytes[offset + $1]) }
        }
        guard let header = read(64, at: 0), header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46,
              header[4] == 2, header[5] == 1 else { return nil }  // ELF, 64-bit, little-endian
        let programHeaders = integer(header, 0x20, 8), sectionHeaders = integer(header, 0x28, 8)
        let programEntry = integer(header, 0x36, 2), programCount = integer(header, 0x38, 2)
        let sectionEntry = integer(header, 0x3A, 2), sectionCount = integer(header, 0x3C, 2)
        var required = max(64, sectionHeaders + sectionEntry * sectionCount, programHeaders + programEntry * programCount)
        for index in 0..<min(programCount, 256) {
            guard let entry = read(56, at: programHeaders + index * programEntry) else { return required }
            required = max(required, integer(entry, 8, 8) + integer(entry, 32, 8))  // p_offset + p_filesz
        }
        return required
    }

    /// Nil if the file at `path` is as long as its ELF headers say (or is not ELF); else why not.
    static func truncation(ofFileAt path: String) -> String? {
        guard let required = required(byFileAt: path) else { return nil }
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        guard Int(status.st_size) < required else { return nil }
        return "is \(status.st_size) bytes but its ELF headers need \(required): still being written, or cut short"
    }
}
