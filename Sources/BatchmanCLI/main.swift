// The `batchman` executable: parse arguments, run, map errors to exit codes. Everything else
// lives in BatchmanHost, where tests can reach it.
import Batchman
import BatchmanHost
import Dispatch
import Glibc

var arguments = Array(CommandLine.arguments.dropFirst())

// A worker process of an isolated key (started by the host itself) is another program.
if arguments.first == PluginWorker.subcommand {
    PluginWorker.main(Array(arguments.dropFirst()))
}

// `run` and `check` do their work in a child this process supervises: if the child ends without
// finishing (a plugin in it crashed or called _exit), the parent says so and exits non-zero.
if let supervised = Supervisor.attachHost(arguments) {
    arguments = supervised
} else if Supervisor.supervises(arguments) {
    Supervisor.run(arguments)
}

// Before any thread starts: closed standard descriptors are filled, a plugin's exit() is caught,
// and signals are taken by a thread of our own from here on.
Host.prepareProcess()

func perform(_ arguments: [String]) async throws(HostError) {
    switch try HostCommand.parse(arguments) {
    case .help(let command):
        print(HostCommand.usage(for: command))
    case .version:
        print("batchman \(HostCommand.versionNumber) (plugin ABI 1)")
    case .check(let manifest):
        print(try Host.check(manifestPath: manifest))
    case .pluginTest(let options):
        ProcessExitGuard.exit(PluginTest.run(options))
    case .spoolCheck(let directory):
        let (report, isDamaged) = try SpoolCheck.report(directory: directory)
        print(report)
        ProcessExitGuard.exit(isDamaged ? 1 : 0)
    case .submit(let options):
        ProcessExitGuard.exit(SubmitClient.run(options))
    case .natsSetup(let options):
        print(try NATSSetup.run(options))
    case .natsPublish(let options):
        ProcessExitGuard.exit(try NATSPublish.run(options))
    case .run(let options):
        try await Host.run(options)
    }
}

// main stays synchronous on purpose. An async top-level main ends in dispatch_main, whose main
// thread waits in sigsuspend with every signal unblocked, so SIGTERM would kill the process
// instead of reaching the watcher thread. Here the main thread waits on a semaphore with the
// signals still blocked. (Detached: top-level code is main-actor isolated, and the main
// thread is about to block.)
let finished = DispatchSemaphore(value: 0)
let commandArguments = arguments
Task.detached {
    do throws(HostError) {
        try await perform(commandArguments)
    } catch {
        // In the format the run's log was asked for.
        if case .run(let options)? = try? HostCommand.parse(commandArguments), options.logFormat == .json {
            options.logFormat.logger().log(.error, error.message)
        } else {
            var message = "batchman: \(error.message)\n"
            message.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
        }
        ProcessExitGuard.exit(error.exitCode)
    }
    finished.signal()
}
finished.wait()
ProcessExitGuard.exit(0)
