/*
 * batchman_plugin.h: the Batchman processor plugin ABI, version 1.1.
 *
 * This header is everything a plugin author needs. It is self-contained C99.
 *
 * WHAT A PLUGIN IS
 *   A shared library (.so) that processes batches of jobs for the `batchman` host. The host
 *   reads jobs as NDJSON, groups them per key into batches, and calls the plugin with one batch
 *   at a time; the plugin reports one outcome per job.
 *
 * THE ONE EXPORTED FUNCTION
 *   const bm_plugin *batchman_plugin_v1(void);
 *   It returns a pointer to a static descriptor (bm_plugin) that lives as long as the library.
 *   A function rather than a data symbol, because dlsym is only portable for functions.
 *
 * A MINIMAL PLUGIN (echoes each payload back as the job's result)
 *
 *   #include "batchman_plugin.h"
 *
 *   static void *create(const bm_host *host, bm_str key, bm_str config, char *error, size_t cap) {
 *       (void)host; (void)key; (void)config; (void)error; (void)cap;
 *       static int instance;         // any non-NULL pointer; NULL means "refused"
 *       return &instance;
 *   }
 *   static int process_batch(void *instance, const bm_batch *batch, const bm_emitter *out,
 *                            char *error, size_t cap) {
 *       (void)instance; (void)error; (void)cap;
 *       for (size_t i = 0; i < batch->count; i++)
 *           out->emit(out->ctx, i, BM_OK, batch->jobs[i].payload.ptr, batch->jobs[i].payload.len);
 *       return 0;
 *   }
 *   static void destroy(void *instance) { (void)instance; }
 *
 *   static const bm_plugin descriptor = {
 *       BM_PLUGIN_MAGIC, sizeof(bm_plugin), BM_ABI_MAJOR, BM_ABI_MINOR, 0,
 *       "echo", "1.0.0", create, process_batch, destroy,
 *   };
 *   const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
 *
 *   Build:  cc -shared -fPIC -O2 -I<folder of this header> echo.c -o libEcho.so
 *
 * LIFECYCLE AND THREADS
 *   - create() is called once per key (each key has its own instance), with that key's
 *     `config` object from the manifest as JSON text ("{}" when the key has none). Return NULL
 *     and write a message into `error` (at most error_cap bytes, NUL-terminated) to refuse the
 *     configuration: the host reports it and does not start.
 *   - process_batch() is called with one batch. The host never makes two concurrent calls on
 *     one instance unless the descriptor sets BM_FLAG_CONCURRENT. Different instances may be
 *     called in parallel, from different threads, so shared global state needs a lock.
 *   - destroy() is called once per instance at shutdown, after its last process_batch() has
 *     returned. If a call is still running when the host must exit (shutdownTimeout passed),
 *     the instance is never destroyed.
 *   - create() and destroy() run on the host's control thread; process_batch() on worker
 *     threads. The host never calls a plugin from a signal handler, and handles SIGINT,
 *     SIGTERM, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2 itself: a plugin must not install handlers
 *     for them. A plugin must never call exit(): the host then fails with status 70, naming it.
 *   - The library is never unloaded (dlclose is never called), so language runtimes (Go, Rust,
 *     Swift) are safe to use.
 *
 * MEMORY
 *   Everything the host passes in (batch, jobs, strings, the emitter) is borrowed for the
 *   duration of the call only: copy what you keep. Everything the plugin passes to emit() is
 *   copied by the host before emit() returns. No memory is ever freed across the boundary.
 *
 * OUTCOMES
 *   For each job, call out->emit(out->ctx, index, status, data, len) once, on the thread that
 *   is running process_batch() and before it returns:
 *     BM_OK      the job completed; data is its result. Valid JSON is embedded as JSON in the
 *                output line; anything else becomes a JSON string.
 *     BM_FAILED  the job failed for good; data is a message.
 *     BM_RETRY   the job failed but may succeed later; data is a message. It is tried again
 *                (in a later batch, with attempt + 1) while the key's maxAttempts allows.
 *   emit() returns 0 when it accepted the outcome, or -1 (and ignores it) for an index out of
 *   range, a job that already has an outcome, an unknown status, NULL data with a non-zero len,
 *   or a call made after process_batch() returned, from another thread, or through the emitter
 *   of an earlier call (logged once per instance; never a crash; `batchman plugin-test` fails a
 *   plugin that does it). Do not keep `out` past the call: its outcomes would be lost.
 *   A job never emitted is treated as BM_RETRY with the message "No result returned for job".
 *   process_batch() returns 0, or BM_RETRY / BM_FAILED to give every job not yet emitted that
 *   status with the message written into `error` (any other non-zero value means BM_FAILED).
 *   A failed job's result says `"errorReason":"error"` (or `max_retry` once a retried job runs
 *   out of attempts).
 *
 *   1.1: out->emit_detailed(out->ctx, index, status, data, len, reason, retry_after_ms) is emit
 *   with two more things to say about a failure:
 *     reason          a short token of 1 to 32 bytes of [A-Za-z0-9_.-] naming why, such as
 *                     "constraint" or "unavailable": the result says "errorReason":
 *                     "plugin:constraint", and it is kept when a retried job runs out of
 *                     attempts. Empty (len 0) for none. Only with BM_FAILED or BM_RETRY.
 *     retry_after_ms  for BM_RETRY: the job is not tried again sooner than this ("the
 *                     database is locked; try in 2 s"); the key's backoff still applies, and
 *                     the longer of the two is waited. 0 for none; at most one hour is kept.
 *   It returns -1 (and ignores the outcome) for what emit refuses, a reason that is not such a
 *   token, a reason with BM_OK, or a retry_after_ms with another status than BM_RETRY.
 *
 *     bm_str reason = { "constraint", 10 };
 *     out->emit_detailed(out->ctx, i, BM_FAILED, msg, strlen(msg), reason, 0);
 *     bm_str busy = { "busy", 4 };
 *     out->emit_detailed(out->ctx, i, BM_RETRY, msg, strlen(msg), busy, 2000);
 *
 * AT-LEAST-ONCE: MAKE SIDE EFFECTS IDEMPOTENT
 *   The host delivers every job at least once, not exactly once. A job reaches process_batch()
 *   again when its batch timed out (the host answered and retried while the first call was
 *   still running: that call may still commit), when a worker crashed, when the host was killed
 *   and replays its spool, or when a stream redelivers. So a plugin with side effects makes them
 *   idempotent, keyed by the job: (key, id) is unique while the job is pending.
 *   1.1 tells a plugin when to be careful: bm_job.flags has BM_JOB_REDELIVERED for a job that
 *   may have reached a plugin before (attempt > 1, replayed from the spool, or redelivered by a
 *   stream), and bm_batch.deadline_ns says when the host stops waiting for this call. A call
 *   that cannot finish before its deadline should not start work it cannot undo:
 *
 *     // A UNIQUE (key, id) column makes a second insert of the same job a no-op.
 *     sqlite3_exec(db, "BEGIN", 0, 0, 0);
 *     for (size_t i = 0; i < batch->count; i++)
 *         insert_or_ignore(db, batch->key, batch->jobs[i].id, batch->jobs[i].payload);
 *     if (host->abi_minor >= 1 && batch->deadline_ns != 0 && now_ns() > batch->deadline_ns) {
 *         sqlite3_exec(db, "ROLLBACK", 0, 0, 0);   // the host has given up on this call
 *         return BM_RETRY;
 *     }
 *     commit_then_emit(...);                       // see TRANSACTIONS below
 *
 *   where now_ns() is clock_gettime(CLOCK_MONOTONIC) in nanoseconds.
 *
 * TRANSACTIONS: EMIT AFTER COMMIT
 *   emit() is final and immediate: the host takes the outcome as it is emitted. A plugin that
 *   writes a batch in one transaction therefore holds its outcomes until the transaction's end,
 *   and emits them after COMMIT returned (BM_OK) or after a ROLLBACK (BM_RETRY or BM_FAILED):
 *
 *     if (sqlite3_exec(db, "COMMIT", 0, 0, 0) == SQLITE_OK) {
 *         for (size_t i = 0; i < batch->count; i++)
 *             out->emit(out->ctx, i, BM_OK, "{}", 2);
 *     } else {
 *         sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
 *         return BM_RETRY;                         // every job not emitted is retried
 *     }
 *
 *   Under isolation ("isolation": "process") each emitted outcome is published to the host at
 *   once, so that a crash later in the call keeps it: an outcome emitted before a COMMIT that
 *   then crashes stands as emitted, and its job is not retried. Emitting after COMMIT is what
 *   keeps a crash from reporting as done a row that was never committed.
 *
 * HOST SERVICES (1.1)
 *   bm_host gained, for plugins that check host->struct_size (BM_HOST_HAS below):
 *     manifest_dir  the folder of the manifest that configured the key, absolute: resolve the
 *                   relative paths of your config against it, not the working directory.
 *     flags         BM_HOST_DEBUG when the key's entry sets "debug": true (the host shows
 *                   BM_LOG_DEBUG lines only then: skip building costly debug messages without).
 *     pause         pause(ctx, key, milliseconds): start none of the key's new batches for that
 *                   long (the database is down). Batches running go on; jobs are still taken
 *                   and batched; a later call replaces the pause, 0 ends it. Thread-safe, and
 *                   allowed during process_batch(). Returns 0, or -1 for a key without jobs in
 *                   this host or served by another manifest entry (a plugin pauses only its
 *                   own entry's keys). At most one hour is kept. Under isolation it takes effect when
 *                   the host reads it (at once during a call, else when the next call begins)
 *                   and returns 0: the worker cannot know the host's keys.
 *
 *     if (BM_HOST_HAS(host, pause) && database_is_down)
 *         host->pause(host->ctx, batch->key, 5000);   // and return BM_RETRY
 *
 *     char path[4096];
 *     if (BM_HOST_HAS(host, manifest_dir) && relative[0] != '/')
 *         snprintf(path, sizeof path, "%.*s/%s", (int)host->manifest_dir.len, host->manifest_dir.ptr, relative);
 *
 * COMPATIBILITY
 *   New fields are only ever appended to these structs, with a new minor version. The host reads
 *   `struct_size` to know which fields a plugin has, and a plugin must check host->struct_size
 *   (BM_HOST_HAS) or host->abi_minor before using a field newer than BM_ABI_MINOR 0. A different
 *   major version, a wrong magic or a struct_size smaller than version 1.0's is refused by the
 *   host with a message. A plugin built against 1.0 runs unchanged on a 1.1 host.
 *   1.1 added: bm_job.flags (in what was padding: sizeof(bm_job) is unchanged),
 *   bm_batch.deadline_ns, bm_emitter.emit_detailed, and bm_host's manifest_dir, flags and
 *   pause. bm_job.flags, bm_batch.deadline_ns and bm_emitter.emit_detailed are there when
 *   host->abi_minor >= 1; a 1.0 host leaves them undefined.
 */
#ifndef BATCHMAN_PLUGIN_H
#define BATCHMAN_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** "BMPL": the first field of every descriptor. */
#define BM_PLUGIN_MAGIC 0x424D504CU
#define BM_ABI_MAJOR 1
#define BM_ABI_MINOR 1

/** The name of the function every plugin exports. */
#define BM_PLUGIN_ENTRY_SYMBOL "batchman_plugin_v1"

/** Outcome statuses for bm_emitter.emit, and non-zero returns of process_batch. */
#define BM_OK 0
#define BM_FAILED 1
#define BM_RETRY 2

/** Descriptor flag: process_batch may be called concurrently on one instance. */
#define BM_FLAG_CONCURRENT 0x1U

/** bm_job.flags (1.1): the job may have reached a plugin before (see AT-LEAST-ONCE). */
#define BM_JOB_REDELIVERED 0x1U

/** bm_host.flags (1.1): debug is on for the key ("debug": true in the manifest). */
#define BM_HOST_DEBUG 0x1U

/** Whether `host` (a const bm_host *) has `field`, one added after 1.0: use before reading it. */
#define BM_HOST_HAS(host, field) \
    ((host)->struct_size >= offsetof(bm_host, field) + sizeof((host)->field))

/** Levels for bm_host.log. */
#define BM_LOG_DEBUG 0
#define BM_LOG_INFO 1
#define BM_LOG_WARNING 2
#define BM_LOG_ERROR 3

/** A byte string: NOT NUL-terminated. */
typedef struct bm_str {
    const char *ptr;
    size_t len;
} bm_str;

/** Services of the host, passed to create() and valid for the instance's whole life. */
typedef struct bm_host {
    /** sizeof(bm_host) as the host was compiled: fields past it are absent. */
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    /** Pass this back to the host's functions. */
    void *ctx;
    /** Writes one line to the host's log (standard error), with newlines and other control
     *  characters in `message` escaped (as \n or \x00). Thread-safe. */
    void (*log)(void *ctx, int level, const char *message, size_t len);
    /* 1.1: check BM_HOST_HAS(host, field) before reading these. */
    /** The folder of the manifest that configured the key: absolute, no trailing slash. */
    bm_str manifest_dir;
    /** BM_HOST_* values or-ed together. */
    uint32_t flags;
    /** Starts none of `key`'s batches for `milliseconds` (0 resumes); 0, or -1 for a key without
     *  jobs here or of another entry. Thread-safe; see HOST SERVICES. */
    int (*pause)(void *ctx, bm_str key, uint64_t milliseconds);
} bm_host;

/** One job of a batch. */
typedef struct bm_job {
    /** The job's id (unique within its key while pending). */
    bm_str id;
    /** The job's payload: the raw JSON text of the input line's "payload" value. */
    bm_str payload;
    /** Which try this is: 1 on the first. */
    uint32_t attempt;
    /** 1.1 (host->abi_minor >= 1): BM_JOB_* values. In what was padding in 1.0, so the size of
     *  bm_job, and the stride of bm_batch.jobs, is the same in both. */
    uint32_t flags;
} bm_job;

/** A batch: jobs of one key, handed over in one call. */
typedef struct bm_batch {
    /** Unique within one run of the host. */
    uint64_t id;
    /** The key whose jobs these are. */
    bm_str key;
    const bm_job *jobs;
    size_t count;
    /** 1.1 (host->abi_minor >= 1): when the host stops waiting for this call (the key's
     *  timeout), in CLOCK_MONOTONIC nanoseconds; 0 when the key has no timeout. */
    uint64_t deadline_ns;
} bm_batch;

/** Where a plugin reports outcomes; see OUTCOMES above. */
typedef struct bm_emitter {
    void *ctx;
    int (*emit)(void *ctx, size_t index, int status, const char *data, size_t len);
    /** 1.1 (host->abi_minor >= 1): emit, with a reason token and a retry-after; see OUTCOMES. */
    int (*emit_detailed)(void *ctx, size_t index, int status, const char *data, size_t len, bm_str reason,
                         uint64_t retry_after_ms);
} bm_emitter;

/** The descriptor a plugin returns from batchman_plugin_v1(). */
typedef struct bm_plugin {
    /** BM_PLUGIN_MAGIC. */
    uint32_t magic;
    /** sizeof(bm_plugin) as the plugin was compiled. */
    uint32_t struct_size;
    /** BM_ABI_MAJOR and BM_ABI_MINOR as the plugin was compiled. */
    uint16_t abi_major;
    uint16_t abi_minor;
    /** BM_FLAG_* values or-ed together. */
    uint32_t flags;
    /** A short name and a version for messages, NUL-terminated. */
    const char *name;
    const char *version;
    /** Makes the instance for one key; NULL plus a message in `error` refuses. */
    void *(*create)(const bm_host *host, bm_str key, bm_str config_json, char *error, size_t error_cap);
    /** Processes one batch; see OUTCOMES. */
    int (*process_batch)(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap);
    /** Releases an instance made by create(). */
    void (*destroy)(void *instance);
} bm_plugin;

/** The type of batchman_plugin_v1. */
typedef const bm_plugin *(*bm_plugin_entry)(void);

/** Declared here so that a plugin's definition is checked against it. */
const bm_plugin *batchman_plugin_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* BATCHMAN_PLUGIN_H */
