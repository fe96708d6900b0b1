#if canImport(Glibc)
import Glibc
#endif

/// A lock around a value, like `Synchronization.Mutex`, but one that a running thread may take
/// again before a woken waiter does: glibc's adaptive mutex, which spins briefly and then sleeps
/// on a plain futex.
///
/// Why not `Mutex` for a batcher: on Linux it is a priority-inheritance futex, whose unlock hands
/// the lock straight to a sleeping waiter. A producer that submits job after job then finds the
/// lock owned by a thread that is not running yet, sleeps in the kernel itself, and the two
/// threads alternate through the kernel on every acquisition (a lock convoy). A batcher's lock
/// is taken per job by its producers and per batch by the thread that settles it, exactly that
/// pattern. See the README's Performance section for the measured difference.
@usableFromInline final class AdaptiveMutex<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched with `mutex` held, and the pointer is this object's own.
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline var value: Value

    @inlinable init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inlinable func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
