import Testing

@testable import BatchmanNATS

@Suite struct NATSClientPartsTests {
    @Test func serverLists() throws {
        let servers = try NATSServerURL.parseList("nats://127.0.0.1:4222, nats://alice:s%3Acret@127.0.0.2:4223,tok@localhost,[::1]:4300")
        #expect(servers == [
            NATSServerURL(host: "127.0.0.1", port: 4222),
            NATSServerURL(host: "127.0.0.2", port: 4223, user: "alice", password: "s:cret"),
            NATSServerURL(host: "127.0.0.1", port: 4222, token: "tok"),
            NATSServerURL(host: "::1", port: 4300),
        ])
        #expect(servers[1].description == "nats://127.0.0.2:4223")  // no credentials in logs
        for bad in ["tls://127.0.0.1:4222", "nats://example.com:4222", "127.0.0.1:99999", "", "nats://:4222"] {
            #expect(throws: NATSError.self, "\(bad)") { try NATSServerURL.parseList(bad) }
        }
    }

    @Test func keysAsSubjectTokens() {
        #expect(SubjectToken.encode("logger") == "logger")
        #expect(SubjectToken.encode("eu.orders") == "eu%2Eorders")
        #expect(SubjectToken.encode("a b*c>d%") == "a%20b%2Ac%3Ed%25")
        #expect(SubjectToken.encode("clé") == "cl%C3%A9")
        #expect(SubjectToken.encode("tab\there") == "tab%09here")
        for key in ["logger", "eu.orders", "a b*c>d%", "clé", "%41"] {
            let token = SubjectToken.encode(key)
            #expect(!token.contains(".") && !token.contains(" ") && !token.contains("*") && !token.contains(">"))
            #expect(SubjectToken.decode(token) == key)
        }
        #expect(SubjectToken.decode("%41") == nil)  // "A" is never escaped
    }

    @Test func fnv1a32KnownValues() {
        #expect(SubjectToken.fnv1a32("") == 0x811C_9DC5)
        #expect(SubjectToken.fnv1a32("a") == 0xE40C_292C)
        #expect(SubjectToken.fnv1a32("foobar") == 0xBF9C_F968)
        #expect(SubjectToken.partition(ofKey: "foobar", partitions: 16) == Int(0xBF9C_F968 % 16))
    }

    @Test func writesCombineAndWaitWhileReconnecting() {
        let socket = NATSSocket(descriptor: 42)
        var state = NATSConnectionState(socket: socket, reconnectBufferBytes: 8)
        #expect(state.enqueue([1]) == .write(socket, [1]))
        #expect(state.enqueue([2]) == .none)  // the writer takes it next
        #expect(state.enqueue([3]) == .none)
        #expect(state.wrote(succeeded: true) == .write(socket, [2, 3]))
        #expect(state.wrote(succeeded: true) == .none)
        state.pinged(waiter: 7)
        #expect(state.lost() == [7])
        #expect(state.phase == .reconnecting)
        #expect(state.enqueue([4, 5]) == .none)
        #expect(state.enqueue(Array(repeating: 9, count: 7)) == .dropped)  // past the reconnect buffer
        let next = NATSSocket(descriptor: 43)
        #expect(state.reconnected(next, prefix: [0]) == .write(next, [0, 4, 5]))
        #expect(state.wrote(succeeded: true) == .none)
        let (open, waiters) = state.close()
        #expect(open == next && waiters.isEmpty)
        #expect(state.enqueue([1]) == .dropped)
    }

    @Test func pongsAnswerPingsInOrder() {
        var state = NATSConnectionState(socket: NATSSocket(descriptor: 1), reconnectBufferBytes: 0)
        state.pinged(waiter: 0)  // the keep-alive's
        state.pinged(waiter: 5)
        #expect(state.unansweredPings == 2)
        #expect(state.pong() == .none)
        #expect(state.pong() == .wake(5))
        #expect(state.pong() == .none)
    }
}
