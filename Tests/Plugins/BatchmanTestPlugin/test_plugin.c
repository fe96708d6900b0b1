#define _GNU_SOURCE
/*
 * BatchmanTestPlugin: a deliberately misbehaving plugin for the host's end-to-end tests.
 * Each key's manifest `config` picks a behaviour; fields are read with a naive scanner that
 * expects flat JSON like {"mode": "too_few", "sleep_ms": 50}.
 *
 *   mode "echo" (default)  every job completes with its payload
 *   mode "too_few"         the last job of each batch gets no outcome
 *   mode "duplicate"       job 0 is emitted twice (first OK "first", then FAILED) and the rest echo
 *   mode "shifted"         job i's payload is emitted at index i + 1: job 0 gets nothing, the last
 *                          emit is out of range
 *   mode "fail_return"     job 0 echoes, then process_batch returns BM_FAILED "backend unavailable"
 *   mode "retry_return"    job 0 echoes, then process_batch returns BM_RETRY "backend busy"
 *   mode "garbage"         every job completes with bytes that are not JSON (and not UTF-8)
 *   retry_ids "a,b"        those jobs emit BM_RETRY "transient failure" until attempt retry_until
 *                          (default: always)
 *   fail_ids "a,b"         those jobs emit BM_FAILED "permanent failure"
 *   sleep_ms N             each batch sleeps N ms first (a slow backend)
 *   refuse "message"       create() refuses with that message
 *   wait_file "/path"      each batch waits until that file exists (a backend the test unblocks)
 *   create_wait_file "/p"  create() logs "create is waiting for its file" and waits until that
 *                          file exists (a slow create)
 *   mode "exit"            process_batch calls exit(0) (a contract breach the host must catch)
 *   mode "stray_emit"      breaks the emit rules and reports what emit() returned: each job's
 *                          result is {"during_other_thread":C1,"stale_same_thread":C2,
 *                          "after_return_other_thread":C3} (C2, C3 from the second call on:
 *                          an emitter kept from the previous call, used on this thread and
 *                          from a thread that waited until the previous call had returned)
 *   mode "null_emit"       each job is first emitted with NULL data and length 100, then
 *                          completed with {"null_emit":<what emit returned>}
 *   crash_id "id"          a batch holding that job crashes the plugin, as crash_how says:
 *   crash_how "segv"       "segv" (default: a write through NULL), "abort", "exit" (exit(0)),
 *                          "_exit" (_exit(0): no atexit handler runs) or "hang" (never returns)
 *   crash_late 1           with crash_id: crash on reaching that job, after emitting the ones before
 *   stdout 1               each batch writes a line to standard output (printf and write(1))
 *   leak_mb N              each batch allocates N MiB, touches it and never frees it; abort()s
 *                          if malloc fails (a leaking plugin under a memoryLimit)
 *   log_on_create "text"   create() logs this text with \n and \0 around it (one call)
 *   create_exit N          create() calls exit(N) (a worker that dies while starting)
 *   create_crash 1         create() writes through NULL
 *   create_abort_file "/p" create() aborts if that file exists (a restarted worker that cannot start)
 *   once_file "/path"      with the hostile modes below: misbehave only while that file does not
 *                          exist, and create it when misbehaving (so the retry on a fresh worker
 *                          behaves); the crash modes (crash_id) create it too, before crashing
 *   forge "kind"           (isolated) each batch first writes a forged frame on descriptor 3,
 *                          the worker's socket: "done_short" (length 1, kind 13), "done_extra"
 *                          (a done kind with 4 extra bytes), "huge" (a length of 4 GiB - 16);
 *                          then emits every job normally
 *   forge_log_mb N         (isolated) after emitting every job, grows the outcome log (descriptor
 *                          4) to N MiB and publishes that length over zeros
 *   shared_mb N            each batch maps N MiB of shared anonymous memory and touches it
 *   crash_after_emit 1     emits every job, then writes through NULL
 *   child_pid_file "/p"    with crash_how "fork_abort": the child writes its pid there
 *   crash_how "fork_abort" forks a child that keeps the worker's descriptors and waits for ever,
 *                          then aborts
 *   retry_while_missing "/p" every job emits BM_RETRY "backend locked on attempt N" while that file
 *                          does not exist, and each such batch logs the same (a backend that is
 *                          down for a while)
 *   log_batches 1          each batch logs "batch: " and its job ids, comma-separated, in order
 *   a batch of 0 jobs logs "process_batch called with 0 jobs" (the host must never make one)
 *   mode "identity"        every job completes with {"creates":N,"pid":P,"key":"K","active":A}: the
 *                          create calls that succeeded in this process so far, the process, the
 *                          batch's key and the most process_batch calls that ever ran on the
 *                          instance at once
 *   rendezvous N           (the concurrent build) each call first waits, up to 20 s, until N calls
 *                          have run on the instance at once
 *
 * Whatever the mode, two overlapping process_batch calls on one instance fail every job of the
 * second with "concurrent process_batch calls on one instance": the ABI promises they never happen.
 * Unless it is built with TEST_PLUGIN_FLAGS BM_FLAG_CONCURRENT (BatchmanConcurrentTestPlugin),
 * which allows them.

 */
#include "batchman_plugin.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef TEST_PLUGIN_FLAGS
#define TEST_PLUGIN_FLAGS 0
#define TEST_PLUGIN_NAME "test"
#endif

/* Instances created in this process (mode "identity" reports it). */
static int creates;

typedef struct test_instance {
    char mode[32];
    char retry_ids[256];
    char fail_ids[256];
    long retry_until;
    long sleep_ms;
    char wait_file[256];
    char crash_id[64];
    char crash_how[16];
    long writes_stdout;
    long crash_late;
    long leak_mb;
    char once_file[256];
    char forge[32];
    long forge_log_mb;
    long shared_mb;
    long crash_after_emit;
    char child_pid_file[256];
    char retry_while_missing[256];
    long log_batches;
    long rendezvous;
    int active; /* process_batch calls running now, updated atomically */
    int most_active; /* the most that ever ran at once */
    const bm_host *host;
    /* stray_emit: the emitter of the previous call, and a thread that uses it late */
    int has_previous;
    bm_emitter previous_copy;
    const bm_emitter *previous_pointer;
    pthread_t late_thread;
    volatile int previous_returned;
} test_instance;

static void wait_for_file(const char *path) {
    while (path[0] != '\0' && access(path, F_OK) != 0) {
        struct timespec pause = { 0, 1000000L };
        nanosleep(&pause, NULL);
    }
}

typedef struct emit_attempt {
    const bm_emitter *out;
    test_instance *instance; /* set: wait until the previous call returned first */
    int code;
} emit_attempt;

static void *emit_from_thread(void *opaque) {
    emit_attempt *attempt = opaque;
    if (attempt->instance != NULL) {
        while (!__atomic_load_n(&attempt->instance->previous_returned, __ATOMIC_SEQ_CST)) {
            struct timespec pause = { 0, 100000L };
            nanosleep(&pause, NULL);
        }
    }
    attempt->code = attempt->out->emit(attempt->out->ctx, 0, BM_OK, "\"stray\"", 7);
    return NULL;
}

/* Where the value of `"name":` starts in flat JSON, or NULL; `*remaining` is the bytes left. */
static const char *field_value(bm_str json, const char *name, size_t *remaining) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", name);
    size_t pattern_len = strlen(pattern);
    for (size_t i = 0; i + pattern_len < json.len; i++) {
        if (memcmp(json.ptr + i, pattern, pattern_len) != 0) continue;
        size_t j = i + pattern_len;
        while (j < json.len && (json.ptr[j] == ' ' || json.ptr[j] == ':')) j++;
        *remaining = json.len - j;
        return json.ptr + j;
    }
    return NULL;
}

/* Copies the string value of `"name": "..."` into `out`; returns 1 if found. */
static int string_field(bm_str json, const char *name, char *out, size_t cap) {
    size_t remaining = 0;
    const char *value = field_value(json, name, &remaining);
    if (value == NULL || remaining == 0 || value[0] != '"') return 0;
    size_t k = 1, n = 0;
    while (k < remaining && value[k] != '"' && n + 1 < cap) out[n++] = value[k++];
    out[n] = '\0';
    return 1;
}

static long number_field(bm_str json, const char *name, long fallback) {
    size_t remaining = 0;
    const char *value = field_value(json, name, &remaining);
    return value == NULL ? fallback : strtol(value, NULL, 10);
}

/* Whether `id` is one of the comma-separated ids in `list`. */
static int listed(const char *list, bm_str id) {
    const char *item = list;
    while (*item) {
        const char *end = strchr(item, ',');
        size_t len = end ? (size_t)(end - item) : strlen(item);
        if (len == id.len && memcmp(item, id.ptr, len) == 0) return 1;
        if (!end) break;
        item = end + 1;
    }
    return 0;
}

static void *test_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)key;
    char refusal[200];
    char text[200];
    if (string_field(config, "log_on_create", text, sizeof text)) {
        char line[256];
        int len = snprintf(line, sizeof line, "first line\n%s", text);
        line[len] = '\0';
        len += 1; /* the NUL goes too */
        len += snprintf(line + len, sizeof line - (size_t)len, "\r\nafter NUL");
        host->log(host->ctx, BM_LOG_INFO, line, (size_t)len);
    }
    long create_exit = number_field(config, "create_exit", -1);
    if (create_exit >= 0) exit((int)create_exit);
    if (number_field(config, "create_crash", 0)) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
    char path[256] = "";
    if (string_field(config, "create_abort_file", path, sizeof path) && access(path, F_OK) == 0) abort();
    path[0] = '\0';
    if (string_field(config, "create_wait_file", path, sizeof path)) {
        static const char waiting[] = "create is waiting for its file";
        host->log(host->ctx, BM_LOG_INFO, waiting, sizeof waiting - 1);
        wait_for_file(path);
    }
    if (string_field(config, "refuse", refusal, sizeof refusal)) {
        snprintf(error, error_cap, "%s", refusal);
        return NULL;
    }
    test_instance *instance = calloc(1, sizeof *instance);
    if (!string_field(config, "mode", instance->mode, sizeof instance->mode)) strcpy(instance->mode, "echo");
    string_field(config, "retry_ids", instance->retry_ids, sizeof instance->retry_ids);
    string_field(config, "fail_ids", instance->fail_ids, sizeof instance->fail_ids);
    instance->retry_until = number_field(config, "retry_until", -1);
    instance->sleep_ms = number_field(config, "sleep_ms", 0);
    string_field(config, "wait_file", instance->wait_file, sizeof instance->wait_file);
    string_field(config, "crash_id", instance->crash_id, sizeof instance->crash_id);
    if (!string_field(config, "crash_how", instance->crash_how, sizeof instance->crash_how)) strcpy(instance->crash_how, "segv");
    instance->writes_stdout = number_field(config, "stdout", 0);
    instance->crash_late = number_field(config, "crash_late", 0);
    instance->leak_mb = number_field(config, "leak_mb", 0);
    string_field(config, "once_file", instance->once_file, sizeof instance->once_file);
    string_field(config, "forge", instance->forge, sizeof instance->forge);
    instance->forge_log_mb = number_field(config, "forge_log_mb", 0);
    instance->shared_mb = number_field(config, "shared_mb", 0);
    instance->crash_after_emit = number_field(config, "crash_after_emit", 0);
    string_field(config, "child_pid_file", instance->child_pid_file, sizeof instance->child_pid_file);
    string_field(config, "retry_while_missing", instance->retry_while_missing, sizeof instance->retry_while_missing);
    instance->log_batches = number_field(config, "log_batches", 0);
    instance->rendezvous = number_field(config, "rendezvous", 0);
    instance->host = host;
    __atomic_add_fetch(&creates, 1, __ATOMIC_SEQ_CST);
    static const char hello[] = "test plugin instance created";
    host->log(host->ctx, BM_LOG_DEBUG, hello, sizeof hello - 1);
    return instance;
}

static int emit_text(const bm_emitter *out, size_t index, int status, const char *text) {
    return out->emit(out->ctx, index, status, text, strlen(text));
}

static int process_one_batch(test_instance *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap);

static int test_process_batch(void *opaque, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    test_instance *instance = opaque;
    int status;
    int running = __atomic_add_fetch(&instance->active, 1, __ATOMIC_SEQ_CST);
    int most = __atomic_load_n(&instance->most_active, __ATOMIC_SEQ_CST);
    while (running > most && !__atomic_compare_exchange_n(&instance->most_active, &most, running, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    if (running > 1 && !(TEST_PLUGIN_FLAGS & BM_FLAG_CONCURRENT)) {
        snprintf(error, error_cap, "concurrent process_batch calls on one instance");
        status = BM_FAILED;
    } else {
        status = process_one_batch(instance, batch, out, error, error_cap);
    }
    __atomic_sub_fetch(&instance->active, 1, __ATOMIC_SEQ_CST);
    return status;
}

/* stray_emit: see the top of the file. One such instance per process (the tests use one). */
static emit_attempt late_attempt;

static int stray_emit_batch(test_instance *instance, const bm_batch *batch, const bm_emitter *out) {
    emit_attempt during = { out, NULL, 0 };
    pthread_t thread;
    pthread_create(&thread, NULL, emit_from_thread, &during);
    pthread_join(thread, NULL);
    int stale = 0, late = 0;
    if (instance->has_previous) {
        stale = instance->previous_copy.emit(instance->previous_copy.ctx, 0, BM_OK, "\"stale\"", 7);
        __atomic_store_n(&instance->previous_returned, 1, __ATOMIC_SEQ_CST);
        pthread_join(instance->late_thread, NULL);
        late = late_attempt.code;
    }
    char result[128];
    snprintf(result, sizeof result, "{\"during_other_thread\":%d,\"stale_same_thread\":%d,\"after_return_other_thread\":%d}",
             during.code, stale, late);
    for (size_t i = 0; i < batch->count; i++) emit_text(out, i, BM_OK, result);
    /* Keep this call's emitter for the next call, and a thread that uses it once this call has returned. */
    instance->has_previous = 1;
    instance->previous_copy = *out;
    instance->previous_pointer = out;
    __atomic_store_n(&instance->previous_returned, 0, __ATOMIC_SEQ_CST);
    late_attempt.out = out;
    late_attempt.instance = instance;
    late_attempt.code = 0;
    pthread_create(&instance->late_thread, NULL, emit_from_thread, &late_attempt);
    return 0;
}

/* once_file: 1 while the hostile mode should still misbehave (creating the file), 0 after. */
static int misbehave_now(const test_instance *instance) {
    if (instance->once_file[0] == '\0') return 1;
    if (access(instance->once_file, F_OK) == 0) return 0;
    int descriptor = open(instance->once_file, O_WRONLY | O_CREAT, 0600);
    if (descriptor >= 0) close(descriptor);
    return 1;
}

static void crash_with_null(void) {
    volatile int *nowhere = NULL;
    *nowhere = 1;
}

/* crash_how "fork_abort": a child that keeps every descriptor and never ends, then abort(). */
static void fork_then_abort(const test_instance *instance) {
    pid_t child = fork();
    if (child == 0) {
        if (instance->child_pid_file[0] != '\0') {
            FILE *file = fopen(instance->child_pid_file, "w");
            if (file != NULL) {
                fprintf(file, "%d\n", (int)getpid());
                fclose(file);
            }
        }
        for (;;) pause();
    }
    abort();
}

/* crash_id: crashes the way crash_how says if the jobs [first, last) hold that job ("*" is every job). */
static void crash_if_poisoned(const test_instance *instance, const bm_batch *batch, size_t first, size_t last) {
    if (instance->crash_id[0] == '\0') return;
    for (size_t i = first; i < last && i < batch->count; i++) {
        bm_str id = batch->jobs[i].id;
        int every = strcmp(instance->crash_id, "*") == 0;
        if (!every && (id.len != strlen(instance->crash_id) || memcmp(id.ptr, instance->crash_id, id.len) != 0)) continue;
        if (!misbehave_now(instance)) return;
        if (strcmp(instance->crash_how, "fork_abort") == 0) fork_then_abort(instance);
        if (strcmp(instance->crash_how, "abort") == 0) abort();
        if (strcmp(instance->crash_how, "exit") == 0) exit(0);
        if (strcmp(instance->crash_how, "_exit") == 0) _exit(0);
        if (strcmp(instance->crash_how, "hang") == 0) for (;;) pause();
        volatile int *nowhere = NULL;
        *nowhere = 1;
    }
}

/* forge: writes a frame no honest worker sends on the worker's socket, descriptor 3. */
static void forge_frame(const char *kind) {
    unsigned char frame[16] = { 0 };
    size_t length = 0;
    if (strcmp(kind, "done_short") == 0) {
        unsigned char bytes[] = { 1, 0, 0, 0, 13 };
        memcpy(frame, bytes, sizeof bytes);
        length = sizeof bytes;
    } else if (strcmp(kind, "done_extra") == 0) {
        unsigned char bytes[] = { 5, 0, 0, 0, 13, 0xde, 0xad, 0xbe, 0xef };
        memcpy(frame, bytes, sizeof bytes);
        length = sizeof bytes;
    } else if (strcmp(kind, "huge") == 0) {
        unsigned char bytes[] = { 0xf0, 0xff, 0xff, 0xff, 13, 0, 0, 0 };
        memcpy(frame, bytes, sizeof bytes);
        length = sizeof bytes;
    }
    if (length > 0 && write(3, frame, length) < 0) { /* the host is gone: nothing to do */ }
}

/* forge_log_mb: grows the outcome log (descriptor 4) and publishes `megabytes` MiB of zeros. */
static void forge_outcome_log(long megabytes) {
    unsigned long long published = (unsigned long long)megabytes << 20;
    if (ftruncate(4, (off_t)(published + 8)) != 0) return;
    if (pwrite(4, &published, sizeof published, 0) != (ssize_t)sizeof published) return;
}

/* shared_mb: touches `megabytes` MiB of shared anonymous memory (not counted by RLIMIT_DATA). */
static void touch_shared_memory(long megabytes) {
    size_t size = (size_t)megabytes << 20;
    char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return;
    for (size_t offset = 0; offset < size; offset += 4096) memory[offset] = 1;
}

static int process_one_batch(test_instance *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    if (batch->count == 0) {
        static const char empty[] = "process_batch called with 0 jobs";
        instance->host->log(instance->host->ctx, BM_LOG_ERROR, empty, sizeof empty - 1);
    }
    if (instance->log_batches) {
        char line[512] = "batch: ";
        size_t used = strlen(line);
        for (size_t i = 0; i < batch->count && used + batch->jobs[i].id.len + 2 < sizeof line; i++) {
            if (i > 0) line[used++] = ',';
            memcpy(line + used, batch->jobs[i].id.ptr, batch->jobs[i].id.len);
            used += batch->jobs[i].id.len;
        }
        instance->host->log(instance->host->ctx, BM_LOG_INFO, line, used);
    }
    int hostile = (instance->forge[0] != '\0' || instance->forge_log_mb > 0 || instance->shared_mb > 0) && misbehave_now(instance);
    if (hostile && instance->forge[0] != '\0') forge_frame(instance->forge);
    if (hostile && instance->shared_mb > 0) touch_shared_memory(instance->shared_mb);
    wait_for_file(instance->wait_file);
    if (!instance->crash_late) crash_if_poisoned(instance, batch, 0, batch->count);
    if (instance->writes_stdout) {
        printf("chatter from printf\n");
        fflush(stdout);
        static const char raw[] = "{\"not\": \"a result\"}\n";
        if (write(1, raw, sizeof raw - 1) < 0) { /* nothing to do */ }
    }
    if (instance->leak_mb > 0) {
        size_t size = (size_t)instance->leak_mb << 20;
        char *leak = malloc(size);
        if (leak == NULL) abort();
        memset(leak, 1, size);
    }
    if (instance->sleep_ms > 0) {
        struct timespec pause = { instance->sleep_ms / 1000, (instance->sleep_ms % 1000) * 1000000L };
        nanosleep(&pause, NULL);
    }
    const char *mode = instance->mode;
    for (int waited = 0; waited < 20000 && __atomic_load_n(&instance->most_active, __ATOMIC_SEQ_CST) < instance->rendezvous; waited++) {
        struct timespec pause = { 0, 1000000L };
        nanosleep(&pause, NULL);
    }
    int seen = __atomic_load_n(&instance->most_active, __ATOMIC_SEQ_CST);
    if (strcmp(mode, "identity") == 0) {
        for (size_t i = 0; i < batch->count; i++) {
            char result[384];
            snprintf(result, sizeof result, "{\"creates\":%d,\"pid\":%d,\"key\":\"%.*s\",\"active\":%d}",
                     __atomic_load_n(&creates, __ATOMIC_SEQ_CST), (int)getpid(), (int)(batch->key.len < 256 ? batch->key.len : 256),
                     batch->key.ptr, seen);
            emit_text(out, i, BM_OK, result);
        }
        return 0;
    }
    if (instance->retry_while_missing[0] != '\0' && access(instance->retry_while_missing, F_OK) != 0 && batch->count > 0) {
        char message[64];
        int length = snprintf(message, sizeof message, "backend locked on attempt %u", batch->jobs[0].attempt);
        instance->host->log(instance->host->ctx, BM_LOG_INFO, message, (size_t)length);
        for (size_t i = 0; i < batch->count; i++) emit_text(out, i, BM_RETRY, message);
        return 0;
    }
    if (strcmp(mode, "exit") == 0) exit(0);
    if (strcmp(mode, "stray_emit") == 0) return stray_emit_batch(instance, batch, out);
    if (strcmp(mode, "null_emit") == 0) {
        for (size_t i = 0; i < batch->count; i++) {
            int code = out->emit(out->ctx, i, BM_OK, NULL, 100);
            char result[32];
            snprintf(result, sizeof result, "{\"null_emit\":%d}", code);
            emit_text(out, i, BM_OK, result);
        }
        return 0;
    }
    if (strcmp(mode, "shifted") == 0) {
        for (size_t i = 0; i < batch->count; i++) {
            int code = out->emit(out->ctx, i + 1, BM_OK, batch->jobs[i].payload.ptr, batch->jobs[i].payload.len);
            if (i + 1 == batch->count && code != -1) return BM_FAILED; /* the host must refuse it */
        }
        return 0;
    }
    for (size_t i = 0; i < batch->count; i++) {
        const bm_job *job = &batch->jobs[i];
        if (instance->crash_late) crash_if_poisoned(instance, batch, i, i + 1);
        if (strcmp(mode, "too_few") == 0 && i + 1 == batch->count) break;
        if ((strcmp(mode, "fail_return") == 0 || strcmp(mode, "retry_return") == 0) && i == 1) {
            snprintf(error, error_cap, "%s", mode[0] == 'f' ? "backend unavailable" : "backend busy");
            return mode[0] == 'f' ? BM_FAILED : BM_RETRY;
        }
        if (strcmp(mode, "duplicate") == 0 && i == 0) {
            emit_text(out, 0, BM_OK, "\"first\"");
            int code = emit_text(out, 0, BM_FAILED, "second outcome for job 0");
            if (code != -1) return BM_FAILED; /* the host must refuse it */
            continue;
        }
        if (listed(instance->fail_ids, job->id)) {
            emit_text(out, i, BM_FAILED, "permanent failure");
        } else if (listed(instance->retry_ids, job->id) &&
                   (instance->retry_until < 0 || (long)job->attempt < instance->retry_until)) {
            char message[64];
            snprintf(message, sizeof message, "transient failure on attempt %u", job->attempt);
            emit_text(out, i, BM_RETRY, message);
        } else if (strcmp(mode, "garbage") == 0) {
            static const char garbage[] = { 'n', 'o', '"', '\\', '\n', (char)0xff, (char)0xc3 };
            out->emit(out->ctx, i, BM_OK, garbage, sizeof garbage);
        } else {
            out->emit(out->ctx, i, BM_OK, job->payload.ptr, job->payload.len);
        }
    }
    if (hostile && instance->forge_log_mb > 0) forge_outcome_log(instance->forge_log_mb);
    if (instance->crash_after_emit && batch->count > 0) crash_with_null();
    return 0;
}

static void test_destroy(void *opaque) {
    test_instance *instance = opaque;
    if (__atomic_load_n(&instance->active, __ATOMIC_SEQ_CST) != 0) {
        fprintf(stderr, "test plugin: destroy called during process_batch\n");
    }
    free(instance);
}

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC,
    .struct_size = sizeof(bm_plugin),
    .abi_major = BM_ABI_MAJOR,
    .abi_minor = BM_ABI_MINOR,
    .flags = TEST_PLUGIN_FLAGS,
    .name = TEST_PLUGIN_NAME,
    .version = "0.0.1",
    .create = test_create,
    .process_batch = test_process_batch,
    .destroy = test_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
