import BatchmanNATS
import Glibc

/// What `batchman` was asked to do, parsed from its arguments.
public enum HostCommand: Equatable, Sendable {
    case run(RunOptions)
    case check(manifest: String)
    case pluginTest(PluginTestOptions)
    case spoolCheck(directory: String)
    case submit(SubmitOptions)
    case natsSetup(NATSSetupOptions)
    case natsPublish(NATSPublishOptions)
    /// The usage of one command (`run --help`), or of all (nil).
    case help(Verb?)
    case version

    /// The commands, as `batchman <verb> --help` names them.
    public enum Verb: String, Equatable, Sendable, CaseIterable {
        case run, check
        case pluginTest = "plugin-test"
        case spoolCheck = "spool check"
        case submit
        case natsSetup = "nats setup"
        case natsPublish = "nats publish"
    }

    public static let versionNumber = "0.1.0"

    /// Every command in one line each, for "missing command" and "unknown command".
    static let commands = "run, check, submit, nats setup, nats publish, plugin-test or spool check (batchman --help says what each does)"

    static let runUsage = """
        Usage: batchman run [MANIFEST] [options]
          Batch NDJSON jobs from standard input (or --input) through the manifest's plugins, one
          result line per job on standard output (or --output). MANIFEST defaults to ./plugins.json.

        Options:
          --input FILE          read jobs from FILE instead of standard input (- for standard input, with --listen)
          --listen ADDRESS      serve clients on unix:PATH or tcp:HOST:PORT (repeatable; HOST numeric or localhost,
                                PORT 0 picks one and the log says which): each sends job lines and reads its own
                                results on its connection; standard input is then read only with --input
          --max-connections N   clients connected at once at most (default 1024); one more is closed at once
          --nats URLS           take jobs from NATS JetStream (nats://[user:pass@]HOST:PORT, comma-separated) instead of
                                standard input, and store each result there (see batchman nats setup --help)
          --partitions P        with --nats: auto (the default: a fair share of the partitions, rebalanced as hosts
                                come and go) or a list such as 0,1,5-7 (those, whenever their lease is free)
          --name NAME           with --nats: this host in leases and result lines (default hostname:pid)
          --lease-seconds S     with --nats: a lease not renewed for S seconds (default 15) passes to another host
          --fetch-batch N       with --nats: jobs asked for per pull request (default 1000)
          --nats-prefix P       with --nats: the subjects' prefix given to nats setup (default jobs)
          --http HOST:PORT      serve /metrics (Prometheus), /health and /ready over HTTP (PORT 0 picks one)
          --log-format FORMAT   text (the default) or json: one JSON object per log line on standard error
          --log-timestamps      start each text log line with its time (RFC 3339, UTC)
          --progress            show progress of --input FILE on standard error (the default on a terminal)
          --no-progress         never show it
          --output FILE         write results to FILE instead of standard output
          --max-line-bytes N    longest accepted input line (default 1048576); longer lines fail with invalid_input
          --max-output-bytes N  results waiting for a slow consumer at most (default 8388608); then reading pauses
                                (per client with --listen: only that client's lines wait)
          --max-pending-bytes N memory accepted jobs without a result take at most (default 67108864: each line's
                                bytes plus 512 per job); then reading pauses until results free room
          --workers N           threads that call plugins, shared by all keys, 1 to 1024 (default: the number of cores)
          --max-processes N     plugin worker processes alive at once at most (default 256); a key that needs one
                                more waits until an idle one is retired
          --stats-interval S    also print the statistics line every S seconds (it is always printed on exit)
          --stats-per-key       print a statistics line per key as well
          --watch               reload when the manifest or a plugin file changes (checked every second)
          --spool DIR           log accepted lines in DIR before batching them; after a crash, replay those without
                                a result and resume --input where it stopped (results are then at least once)
          --fsync POLICY        when the spool reaches the disk: never, interval (every second, the default) or always
          --spool-max-bytes N   spool size at most (default 1073741824); at the bound reading pauses, nothing is dropped

        Input, one JSON object per line:  {"key":"logger","id":"42","payload":<any JSON>}
        Output, one line per job:         {"key","id","status","result","errorReason","errorMessage","batchId","attempts","submittedAt","completedAt"}

        Signals: SIGINT, SIGTERM or SIGQUIT stop reading (and accepting clients) and drain, answering the
        clients still connected (a second one exits at once);
        SIGHUP reloads the manifest and plugins; SIGUSR1 prints the statistics line, SIGUSR2 the
        per-key lines too.

        Exit status: 0 done (end of input or a stop signal, after draining), 64 usage error,
        78 manifest or plugin error, 70 failure while running (output gone, a plugin called
        exit or crashed the host: the host says how many accepted jobs got no result),
        128+N on a second signal N or a signal while starting.
        """

    static let checkUsage = """
        Usage: batchman check [MANIFEST]
          Read the manifest, load every plugin and create every instance, as run would; report
          every problem, each with the file and its JSON path. MANIFEST defaults to ./plugins.json.

        Exit status: 0 all is well, 64 usage error, 78 a manifest or plugin problem.
        """

    static let pluginTestUsage = """
        Usage: batchman plugin-test LIB.so [--config JSON] [--key K] [--jobs FILE] [--timeout S]
          Check a plugin against the ABI's contract, one line per check, each check in a process of
          its own (killed after S seconds, default 10): its descriptor, create, batches of 1 to 1000
          jobs, how its outcomes split (ok / failed / retry, with the first messages; it fails if no
          job completes), empty, large, invalid UTF-8 and deeply nested payloads, attempt > 1,
          concurrent calls, an emitter kept past its call, destroy, and its speed.

        Options:
          --config JSON         the config its create() is given (default {})
          --key K               the key its instance is made for (default plugin-test)
          --jobs FILE           NDJSON jobs of your own ({"key","id","payload"} per line, as batchman run
                                reads them; the key is K's): their payloads fill the batches, the
                                outcomes check reports how they split (default: synthetic jobs like
                                {"n":0,"text":"the quick brown fox"})
          --timeout S           seconds a check may take before it is reported hung, 1 to 3600 (default 10)

        Exit status: 0 every check passed, 1 a check failed, 64 usage error, 65 FILE holds a line that
        is not a job, 66 FILE cannot be read.
        """

    static let submitUsage = """
        Usage: batchman submit --connect ADDRESS [--input FILE]
          Send NDJSON jobs (standard input, or FILE) to a host started with --listen ADDRESS and print
          each result line on standard output as it comes; ADDRESS is unix:PATH or tcp:HOST:PORT.

        Exit status: 0 every job sent has its result, 64 usage error, 66 FILE cannot be read,
        69 cannot connect, 70 the connection ended before every result came back.
        """

    static let natsSetupUsage = """
        Usage: batchman nats setup --server URLS --partitions N [--replicas R] [--prefix jobs]
          Create, if missing, what hosts started with --nats share: the job stream JOBS (jobs.*.*), the
          results stream RESULTS (results.>), and the bucket batchman-leases (partition leases, live hosts,
          the partition count); then print what exists. Running it again changes nothing. Servers still
          starting are waited for (10 s at most).

        Options:
          --server URLS         nats://[user:password@|token@]HOST:PORT, comma-separated (credentials may
                                also come from BATCHMAN_NATS_USER, BATCHMAN_NATS_PASSWORD, BATCHMAN_NATS_TOKEN)
          --partitions N        partitions of the job stream, 1 to 4096; a key's is FNV-1a-32(key) mod N
          --replicas R          copies of each stream and the bucket, 1 to 5 (default 1; 3 for a 3-node cluster)
          --prefix P            subjects' prefix (default jobs: the stream is JOBS)

        Exit status: 0 done, 64 usage error, 69 no server, 70 JetStream refused, 78 a different partition count exists.
        """

    static let natsPublishUsage = """
        Usage: batchman nats publish --server URLS [--input FILE] [--prefix jobs]
          Publish NDJSON jobs (standard input, or FILE) to the job stream: each to jobs.<partition>.<key>
          with Nats-Msg-Id <key>/<id>, retried until stored. Keys with '.', '*', '>', '%', spaces or
          non-ASCII bytes are written %XX in the subject.

        Exit status: 0 every job stored, 64 usage error, 65 some lines were not jobs (the others are stored),
        66 FILE cannot be read, 69 no server, 70 the stream refused a job, 78 nats setup was not run.
        """

    static let spoolCheckUsage = """
        Usage: batchman spool check DIR
          Report a spool's state (segments, records, how many are not answered, the ledger, damage,
          who holds the lock) without running anything.

        Exit status: 0 a healthy spool (a torn tail included), 1 damage a run would repair, 64 usage error.
        """

    public static let usage = """
        Usage:
          batchman run [MANIFEST] [options]   Batch NDJSON jobs from standard input through the manifest's plugins
          batchman check [MANIFEST]           Load every plugin and create every instance; report every problem
          batchman submit --connect ADDRESS [--input FILE]
                                              Send jobs to a host's --listen socket; print their results
          batchman nats setup --server URLS --partitions N [--replicas R]
                                              Create the JetStream streams and bucket that hosts run with --nats share
          batchman nats publish --server URLS [--input FILE]
                                              Publish jobs to the job stream, each to its key's partition
          batchman plugin-test LIB.so [--config JSON] [--key K] [--jobs FILE] [--timeout S]
                                              Check a plugin against the ABI's contract, one line per check
          batchman spool check DIR            Report a spool's state (records, answered, damage, lock) without running
          batchman COMMAND --help             One command's usage and options
          batchman --help | --version

        MANIFEST defaults to ./plugins.json.


        """ + runUsage.split(separator: "\n", omittingEmptySubsequences: false).dropFirst(4).joined(separator: "\n")
        .replacing("Options:", with: "Options for run:")

    /// The usage of `verb`, or of every command.
    public static func usage(for verb: Verb?) -> String {
        switch verb {
        case nil: usage
        case .run: runUsage
        case .check: checkUsage
        case .pluginTest: pluginTestUsage
        case .spoolCheck: spoolCheckUsage
        case .submit: submitUsage
        case .natsSetup: natsSetupUsage
        case .natsPublish: natsPublishUsage
        }
    }

    static let runOptions = ["--input", "--output", "--listen", "--max-connections", "--http", "--log-format", "--log-timestamps", "--progress",
                             "--no-progress", "--nats", "--partitions", "--name", "--lease-seconds", "--fetch-batch", "--nats-prefix", "--max-line-bytes", "--max-output-bytes", "--max-pending-bytes", "--max-processes", "--workers", "--stats-interval",
                             "--stats-per-key", "--watch", "--spool", "--fsync", "--spool-max-bytes", "--help"]

    /// "unknown option --wokers for run; did you mean --workers? (batchman run --help lists them)"
    static func unknownOption(_ option: String, of verb: Verb, among options: [String]) -> HostError {
        let suggestion = ManifestReader.closest(to: option, in: options).map { "; did you mean \($0)?" } ?? ""
        return HostError(.usage, "unknown option \(option) for \(verb.rawValue)\(suggestion) (batchman \(verb.rawValue) --help lists them)")
    }

    static func wantsHelp(_ arguments: [String]) -> Bool { arguments.contains { $0 == "--help" || $0 == "-h" } }

    /// Parses `arguments` (without the program name).
    /// - Throws: ``HostError`` of kind `.usage` with what is wrong.
    public static func parse(_ arguments: [String]) throws(HostError) -> HostCommand {
        guard let verb = arguments.first else { throw HostError(.usage, "missing command: \(commands)") }
        let rest = Array(arguments.dropFirst())
        switch verb {
        case "--help", "-h", "help": return .help(rest.first.flatMap { Verb(rawValue: $0) })
        case "--version": return .version
        case "check":
            if wantsHelp(rest) { return .help(.check) }
            if let option = rest.first(where: { $0.hasPrefix("-") }) { throw unknownOption(option, of: .check, among: ["--help"]) }
            guard rest.count <= 1 else { throw HostError(.usage, "check takes one manifest, got \(rest.joined(separator: " "))") }
            return .check(manifest: rest.first ?? "plugins.json")
        case "plugin-test":
            if wantsHelp(rest) { return .help(.pluginTest) }
            return .pluginTest(try parsePluginTest(rest))
        case "submit":
            if wantsHelp(rest) { return .help(.submit) }
            return .submit(try parseSubmit(rest))
        case "nats":
            switch rest.first {
            case "setup":
                if wantsHelp(rest) { return .help(.natsSetup) }
                return .natsSetup(try parseNATSSetup(Array(rest.dropFirst())))
            case "publish":
                if wantsHelp(rest) { return .help(.natsPublish) }
                return .natsPublish(try parseNATSPublish(Array(rest.dropFirst())))
            default:
                throw HostError(.usage, "usage: batchman nats setup ... or batchman nats publish ... (batchman nats setup --help says more)")
            }
        case "spool":
            if wantsHelp(rest) { return .help(.spoolCheck) }
            guard rest.first == "check", rest.count == 2, !rest[1].hasPrefix("-") else {
                throw HostError(.usage, "usage: batchman spool check DIR (batchman spool check --help says more)")
            }
            return .spoolCheck(directory: rest[1])
        case "run":
            if wantsHelp(rest) { return .help(.run) }
            var options = RunOptions()
            var manifest: String?
            var nats = NATSRunOptions(servers: [])
            let natsOnly = ["--partitions", "--name", "--lease-seconds", "--fetch-batch", "--nats-prefix"]
            var rest = Arguments(rest)
            while let argument = rest.next() {
                func value() throws(HostError) -> String { try rest.value(of: argument) }
                func count(atMost maximum: Int = .max) throws(HostError) -> Int {
                    let text = try value()
                    guard let number = Int(text), number > 0, number <= maximum else {
                        let range = maximum == .max ? "of at least 1" : "from 1 to \(maximum)"
                        throw HostError(.usage, "\(argument) needs a whole number \(range), got \(text)")
                    }
                    return number
                }
                switch argument {
                case "--input": options.inputPath = try value()
                case "--output": options.outputPath = try value()
                case "--listen": options.listen.append(try ServiceAddress.parse(value(), option: "--listen"))
                case "--max-connections": options.maxConnections = try count()
                case "--nats": nats.servers = try servers(try value(), option: "--nats")
                case "--partitions": nats.partitions = try parsePartitions(try value())
                case "--name":
                    let name = try value()
                    guard !name.isEmpty, name.utf8.count <= 200 else { throw HostError(.usage, "--name needs 1 to 200 bytes") }
                    nats.name = name
                case "--lease-seconds": nats.leaseSeconds = try count(atMost: 3600)
                case "--fetch-batch": nats.fetchBatch = try count(atMost: 100_000)
                case "--nats-prefix": nats.prefix = try prefix(try value())
                case "--http":
                    let text = try value()
                    options.http = try ServiceAddress.parse("tcp:" + text, option: "--http")
                case "--log-format":
                    let text = try value()
                    guard let format = LogFormat(rawValue: text) else { throw HostError(.usage, "--log-format needs text or json, got \(text)") }
                    options.logFormat = format
                case "--log-timestamps": options.logTimestamps = true
                case "--progress": options.progress = true
                case "--no-progress": options.progress = false
                case "--max-line-bytes": options.maxLineBytes = try count()
                case "--workers": options.workers = try count(atMost: RunOptions.maxWorkers)
                case "--max-output-bytes": options.maxOutputBytes = try count()
                case "--max-pending-bytes": options.maxPendingBytes = try count()
                case "--max-processes": options.maxProcesses = try count()
                case "--stats-interval": options.statsInterval = try count()
                case "--stats-per-key": options.statsPerKey = true
                case "--watch": options.watch = true
                case "--spool": options.spoolPath = try value()
                case "--fsync":
                    let text = try value()
                    guard let policy = SpoolSyncPolicy(rawValue: text) else {
                        throw HostError(.usage, "--fsync needs never, interval or always, got \(text)")
                    }
                    options.fsync = policy
                case "--spool-max-bytes":
                    options.spoolMaxBytes = try count()
                    guard options.spoolMaxBytes >= 1 << 20 else {
                        throw HostError(.usage, "--spool-max-bytes needs at least 1048576 (1 MiB), got \(options.spoolMaxBytes)")
                    }
                case _ where argument.hasPrefix("-"): throw unknownOption(argument, of: .run, among: runOptions)
                default:
                    guard manifest == nil else { throw HostError(.usage, "more than one manifest: \(manifest!) and \(argument)") }
                    manifest = argument
                }
            }
            options.manifestPath = manifest ?? options.manifestPath
            if !nats.servers.isEmpty {
                if options.spoolPath != nil {
                    throw HostError(.usage, "--spool is not for --nats: the job stream keeps every job until its result is stored")
                }
                if options.inputPath != nil { throw HostError(.usage, "--input is not for --nats: jobs come from the job stream (batchman nats publish)") }
                options.nats = nats
            } else if let option = arguments.first(where: { natsOnly.contains($0) }) {
                throw HostError(.usage, "\(option) goes with --nats URLS")
            }
            return .run(options)
        default:
            let suggestion = ManifestReader.closest(to: verb, in: ["run", "check", "submit", "plugin-test", "spool", "nats"]).map { "; did you mean \($0)?" } ?? ""
            throw HostError(.usage, "unknown command \"\(verb)\"\(suggestion); the commands are \(commands)")
        }
    }
}

extension HostCommand {
    static func parseSubmit(_ arguments: [String]) throws(HostError) -> SubmitOptions {
        var rest = Arguments(arguments)
        var address: ServiceAddress?
        var input: String?
        while let argument = rest.next() {
            func value() throws(HostError) -> String { try rest.value(of: argument) }
            switch argument {
            case "--connect": address = try ServiceAddress.parse(value(), option: "--connect")
            case "--input": input = try value()
            case _ where argument.hasPrefix("-"): throw unknownOption(argument, of: .submit, among: ["--connect", "--input", "--help"])
            default: throw HostError(.usage, "submit takes no argument \(argument); give --connect ADDRESS [--input FILE]")
            }
        }
        guard let address else { throw HostError(.usage, "submit needs --connect ADDRESS (unix:PATH or tcp:HOST:PORT), where the host was started with --listen") }
        return SubmitOptions(address: address, inputPath: input)
    }

    static func servers(_ text: String, option: String) throws(HostError) -> [NATSServerURL] {
        do throws(NATSError) {
            return try NATSServerURL.parseList(text)
        } catch {
            throw HostError(.usage, "\(option): \(error)")
        }
    }

    static func prefix(_ text: String) throws(HostError) -> String {
        guard !text.isEmpty, text.utf8.count <= 32, text.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
            || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
            throw HostError(.usage, "the prefix needs 1 to 32 letters, digits, - or _, got \(text)")
        }
        return text
    }

    /// `auto`, or partitions such as `0,1,5-7`.
    static func parsePartitions(_ text: String) throws(HostError) -> NATSRunOptions.PartitionChoice {
        if text == "auto" { return .auto }
        var list: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]), low >= 0, low <= high, high < 4096
            else { throw HostError(.usage, "--partitions needs auto or a list such as 0,1,5-7 (each below 4096), got \(text)") }
            list += Array(low...high)
        }
        return .list(Array(Set(list)).sorted())
    }

    static func parseNATSSetup(_ arguments: [String]) throws(HostError) -> NATSSetupOptions {
        var rest = Arguments(arguments)
        var servers: [NATSServerURL]?
        var partitions: Int?
        var replicas = 1
        var prefix = "jobs"
        while let argument = rest.next() {
            func number(_ range: ClosedRange<Int>) throws(HostError) -> Int {
                let text = try rest.value(of: argument)
                guard let value = Int(text), range.contains(value) else {
                    throw HostError(.usage, "\(argument) needs a whole number from \(range.lowerBound) to \(range.upperBound), got \(text)")
                }
                return value
            }
            switch argument {
            case "--server": servers = try Self.servers(try rest.value(of: argument), option: "--server")
            case "--partitions": partitions = try number(1...4096)
            case "--replicas": replicas = try number(1...5)
            case "--prefix": prefix = try Self.prefix(try rest.value(of: argument))
            case _ where argument.hasPrefix("-"):
                throw unknownOption(argument, of: .natsSetup, among: ["--server", "--partitions", "--replicas", "--prefix", "--help"])
            default: throw HostError(.usage, "nats setup takes no argument \(argument)")
            }
        }
        guard let servers else { throw HostError(.usage, "nats setup needs --server URLS (nats://HOST:PORT, comma-separated)") }
        guard let partitions else { throw HostError(.usage, "nats setup needs --partitions N (1 to 4096)") }
        var options = NATSSetupOptions(servers: servers, partitions: partitions)
        options.replicas = replicas
        options.prefix = prefix
        return options
    }

    static func parseNATSPublish(_ arguments: [String]) throws(HostError) -> NATSPublishOptions {
        var rest = Arguments(arguments)
        var servers: [NATSServerURL]?
        var input: String?
        var prefix = "jobs"
        while let argument = rest.next() {
            switch argument {
            case "--server": servers = try Self.servers(try rest.value(of: argument), option: "--server")
            case "--input": input = try rest.value(of: argument)
            case "--prefix": prefix = try Self.prefix(try rest.value(of: argument))
            case _ where argument.hasPrefix("-"):
                throw unknownOption(argument, of: .natsPublish, among: ["--server", "--input", "--prefix", "--help"])
            default: throw HostError(.usage, "nats publish takes no argument \(argument); give --input FILE or jobs on standard input")
            }
        }
        guard let servers else { throw HostError(.usage, "nats publish needs --server URLS (nats://HOST:PORT, comma-separated)") }
        var options = NATSPublishOptions(servers: servers)
        options.inputPath = input
        options.prefix = prefix
        return options
    }

    static func parsePluginTest(_ arguments: [String]) throws(HostError) -> PluginTestOptions {
        var rest = Arguments(arguments)
        var library: String?
        var config = "{}", key = "plugin-test"
        var jobs: String?
        var check: PluginContractCheck?
        var timeout = 10
        while let argument = rest.next() {
            func value() throws(HostError) -> String { try rest.value(of: argument) }
            switch argument {
            case "--config": config = try value()
            case "--key": key = try value()
            case "--jobs": jobs = try value()
            case "--timeout":
                let text = try value()
                guard let seconds = Int(text), (1...3600).contains(seconds) else {
                    throw HostError(.usage, "--timeout needs whole seconds from 1 to 3600, got \(text)")
                }
                timeout = seconds
            case "--check":  // the process plugin-test starts for one check
                let name = try value()
                guard let named = PluginContractCheck(rawValue: name) else { throw HostError(.usage, "unknown check \(name)") }
                check = named
            case _ where argument.hasPrefix("-"):
                throw unknownOption(argument, of: .pluginTest, among: ["--config", "--key", "--jobs", "--timeout", "--help"])
            default:
                guard library == nil else { throw HostError(.usage, "plugin-test takes one library, got \(library!) and \(argument)") }
                library = argument
            }
        }
        guard let library else { throw HostError(.usage, "plugin-test needs the plugin's library: batchman plugin-test LIB.so [--config JSON] [--key K]") }
        var options = PluginTestOptions(library: library)
        options.config = config
        options.key = key
        options.jobs = jobs
        options.check = check
        options.timeout = .seconds(timeout)
        return options
    }
}

/// A command's arguments still to read, one at a time.
struct Arguments {
    private var rest: [String]

    init(_ arguments: [String]) { rest = arguments }

    mutating func next() -> String? { rest.isEmpty ? nil : rest.removeFirst() }

    /// The value that follows `option`.
    mutating func value(of option: String) throws(HostError) -> String {
        guard let value = next() else { throw HostError(.usage, "\(option) needs a value") }
        return value
    }
}

/// How `batchman run` is set up.
public struct RunOptions: Equatable, Sendable {
    public var manifestPath = "plugins.json"
    /// Read jobs from this file instead of standard input (`-`: standard input, with `--listen`).
    public var inputPath: String?
    /// `--listen`: serve clients on these sockets.
    public var listen: [ServiceAddress] = []
    /// `--max-connections`: clients connected at once at most.
    public var maxConnections = 1024
    /// `--http HOST:PORT`: `/metrics`, `/health` and `/ready`.
    public var http: ServiceAddress?
    /// `--log-format`, `--log-timestamps`: how the log on standard error is written.
    public var logFormat = LogFormat.text
    public var logTimestamps = false
    /// `--progress` (true), `--no-progress` (false); nil: on when standard error is a terminal.
    public var progress: Bool?
    /// Write results to this file instead of standard output.
    public var outputPath: String?
    public var maxLineBytes = 1 << 20
    /// Result bytes waiting for standard output at most; reading input pauses at this bound.
    public var maxOutputBytes = 8 << 20
    /// Memory accepted jobs without a result may take at most (``PendingBytes``); reading input
    /// pauses at this bound.
    public var maxPendingBytes = PendingBytes.defaultLimit
    /// Plugin worker processes alive at once at most (``ProcessBudget``); a key that needs one
    /// beyond it waits for an idle one to be retired.
    public var maxProcesses = ProcessBudget.defaultLimit
    /// The most `--workers` allows: each is a thread with an 8 MiB stack.
    public static let maxWorkers = 1024
    /// Threads that call plugins; different keys run in parallel up to this many.
    public var workers = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    /// Seconds between statistics lines on standard error; nil: only on exit.
    public var statsInterval: Int?
    /// Print a statistics line per key too.
    public var statsPerKey = false
    /// Reload when the manifest or a plugin file changes (checked every second).
    public var watch = false
    /// `--spool DIR`: accepted lines are logged there first, and replayed after a crash.
    public var spoolPath: String?
    /// `--fsync`: when the spool's writes reach the disk.
    public var fsync = SpoolSyncPolicy.interval
    /// `--spool-max-bytes`: at this size the spool stops the reading of input.
    public var spoolMaxBytes = Spool.defaultMaxBytes
    /// `--nats`: jobs from JetStream partitions, results stored there.
    public var nats: NATSRunOptions?

    public init() {}
}
