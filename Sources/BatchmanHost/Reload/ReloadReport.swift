/// What a reload changed, for its log line: "plugins changed: EchoPlugin (key default), keys
/// added: x".
enum ReloadReport {
    static func describe(from old: HostGeneration, to new: HostGeneration) -> String {
        let oldEntries = Dictionary(old.manifest.keys.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newEntries = Dictionary(new.manifest.keys.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let oldFiles = old.registry.pluginFiles, newFiles = new.registry.pluginFiles
        let oldIdentities = old.fileIdentities, newIdentities = new.fileIdentities
        var parts: [String] = []
        let changedPlugins = newEntries.keys.sorted().filter { name in
            guard oldEntries[name] != nil else { return false }
            return oldFiles[name] != newFiles[name] || oldIdentities[name] != newIdentities[name]
        }
        if !changedPlugins.isEmpty {
            let names = changedPlugins.map { "\(new.registry.pluginName(forKey: $0) ?? newEntries[$0]!.plugin) (key \($0))" }
            parts.append("plugins changed: \(names.joined(separator: ", "))")
        }
        let added = newEntries.keys.filter { oldEntries[$0] == nil }.sorted()
        if !added.isEmpty { parts.append("keys added: \(added.joined(separator: ", "))") }
        let removed = oldEntries.keys.filter { newEntries[$0] == nil }.sorted()
        if !removed.isEmpty { parts.append("keys removed: \(removed.joined(separator: ", "))") }
        let settingsChanged = newEntries.keys.sorted().filter { name in
            guard let before = oldEntries[name], let after = newEntries[name] else { return false }
            return before.settings != after.settings || before.config != after.config || before.plugin != after.plugin
        }
        if !settingsChanged.isEmpty { parts.append("settings changed: \(settingsChanged.joined(separator: ", "))") }
        if old.manifest.defaults != new.manifest.defaults { parts.append("defaults changed") }
        return parts.isEmpty ? "nothing changed" : parts.joined(separator: ", ")
    }
}
