// The `batchman` executable: parse arguments, run, map errors to exit codes. Everything else
// lives in BatchmanHost, where tests can reach it.
import BatchmanHost
import Glibc

Host.prepareProcess()  // before any thread starts: signals are taken by a thread of our own

func perform(_ arguments: [String]) async throws(HostError) {
    switch try HostCommand.parse(arguments) {
    case .help:
        print(HostCommand.usage)
    case .version:
        print("batchman \(HostCommand.versionNumber) (plugin ABI 1)")
    case .check(let manifest):
        print(try Host.check(manifestPath: manifest))
    case .run(let options):
        try await Host.run(options)
    }
}

do {
    try await perform(Array(CommandLine.arguments.dropFirst()))
} catch {
    var message = "batchman: \(error.message)\n"
    message.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(error.exitCode)
}
