/*
 * batchman_plugin.h: the Batchman processor plugin ABI, version 1.
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
 *   or a call made after process_batch() returned or from another thread (logged once per
 *   instance; never a crash).
 *   A job never emitted is treated as BM_RETRY with the message "No result returned for job".
 *   process_batch() returns 0, or BM_RETRY / BM_FAILED to give every job not yet emitted that
 *   status with the message written into `error` (any other non-zero value means BM_FAILED).
 *
 * COMPATIBILITY
 *   New fields are only ever appended to these structs, with a new minor version. The host reads
 *   `struct_size` to know which fields a plugin has, and a plugin must check host->struct_size
 *   before using a field newer than BM_ABI_MINOR 0. A different major version, a wrong magic or
 *   a struct_size smaller than version 1.0's is refused by the host with a message.
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
#define BM_ABI_MINOR 0

/** The name of the function every plugin exports. */
#define BM_PLUGIN_ENTRY_SYMBOL "batchman_plugin_v1"

/** Outcome statuses for bm_emitter.emit, and non-zero returns of process_batch. */
#define BM_OK 0
#define BM_FAILED 1
#define BM_RETRY 2

/** Descriptor flag: process_batch may be called concurrently on one instance. */
#define BM_FLAG_CONCURRENT 0x1U

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
} bm_host;

/** One job of a batch. */
typedef struct bm_job {
    /** The job's id (unique within its key while pending). */
    bm_str id;
    /** The job's payload: the raw JSON text of the input line's "payload" value. */
    bm_str payload;
    /** Which try this is: 1 on the first. */
    uint32_t attempt;
} bm_job;

/** A batch: jobs of one key, handed over in one call. */
typedef struct bm_batch {
    /** Unique within one run of the host. */
    uint64_t id;
    /** The key whose jobs these are. */
    bm_str key;
    const bm_job *jobs;
    size_t count;
} bm_batch;

/** Where a plugin reports outcomes; see OUTCOMES above. */
typedef struct bm_emitter {
    void *ctx;
    int (*emit)(void *ctx, size_t index, int status, const char *data, size_t len);
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
