@testable import BatchmanHost
import Glibc
import Testing

/// What the parent says of a host that ended without finishing, from what the board holds.
struct SupervisorBoardTests {
    /// A board in memory of its own, as the parent's mapping would be.
    func withBoard(_ body: (SupervisorBoard) -> Void) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: SupervisorBoard.size, alignment: 8)
        defer { memory.deallocate() }
        memory.initializeMemory(as: UInt8.self, repeating: 0, count: SupervisorBoard.size)
        body(SupervisorBoard(base: memory))
    }

    @Test func linesWrittenAreAnsweredAndOthersAreNot() {
        withBoard { board in
            board.accepted(5)
            board.outputBegun(2)
            board.outputWritten(2)
            let read = board.read()
            #expect(read.answered == 2)
            #expect(read.beingWritten == 0)
            #expect(Supervisor.report(.signaled(SIGSEGV), read)
                == "batchman: the host process was terminated by signal 11 (SIGSEGV); 3 accepted jobs got no result.\n")
        }
    }

    /// A host can end between a write and its count (its writer preempted as the write returns,
    /// another thread crashing): those lines may have reached the output. They are named apart,
    /// not called unanswered, nor answered.
    @Test func linesWhoseWriteWasUnderWayAreNamedApart() {
        withBoard { board in
            board.accepted(5)
            board.outputBegun(2)
            board.setSpool("/var/spool/batchman")
            let read = board.read()
            #expect(read.answered == 0)
            #expect(read.beingWritten == 2)
            #expect(Supervisor.report(.signaled(SIGABRT), read)
                == "batchman: the host process was terminated by signal 6 (SIGABRT); 3 accepted jobs got no result; the spool /var/spool/batchman holds them, and the next run with --spool /var/spool/batchman replays them; the results of 2 more were being written to the output as it ended, and may not have reached it.\n")
        }
    }

    @Test func aFailedWriteLeavesItsLinesUnanswered() {
        withBoard { board in
            board.accepted(4)
            board.outputBegun(3)
            board.outputFailed(3)
            let read = board.read()
            #expect(read.answered == 0)
            #expect(read.beingWritten == 0)
            #expect(Supervisor.report(.exited(0), read).contains("; 4 accepted jobs got no result."))
        }
    }
}
