/* sqlite_sink: a transactional Batchman plugin in C, the C kit's starting point.
 *
 * Stores each job as a row of a SQLite table, one transaction per batch, and answers each job
 * with {"stored":true} (or {"stored":true,"again":true} for a redelivered job whose row was
 * already there). What it shows of ABI 1.1 (see batchman_plugin.h):
 *
 *   - Config is JSON: {"database": "rows.db", "table": "jobs"}. A relative database path is
 *     resolved against the manifest's folder (bm_host.manifest_dir), not the working directory.
 *   - Idempotent writes: (key, id) is UNIQUE. A job that may have been delivered before
 *     (BM_JOB_REDELIVERED: a retry, a spool replay, a stream redelivery) and finds its row is
 *     answered as stored; a job delivered for the first time that finds one is a real duplicate
 *     and fails with the reason "constraint" (errorReason "plugin:constraint").
 *   - Outcomes are held until COMMIT and emitted after it: an emitted outcome is final.
 *   - Past the call's deadline (bm_batch.deadline_ns) it rolls back instead of committing: the
 *     host has answered these jobs already and will retry them.
 *   - SQLITE_BUSY (another writer holds the database) retries the batch's jobs with the reason
 *     "busy" and a retry-after of 200 ms; a database that cannot be written at all pauses the
 *     key for 5 s (bm_host.pause) and retries with the reason "unavailable".
 *
 * Build and check (see README.md):
 *   cc -std=c99 -O2 -shared -fPIC -Wall -Wextra -o libsqlite_sink.so sqlite_sink.c -lsqlite3
 *   batchman plugin-test ./libsqlite_sink.so --config '{"database": "/tmp/rows.db"}' --jobs jobs.ndjson
 */
#define _POSIX_C_SOURCE 200809L
#include "batchman_plugin.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct sink {
    const bm_host *host;
    sqlite3 *db;
    sqlite3_stmt *insert;
} sink;

/* One job's outcome, held until the transaction ends. */
typedef struct held {
    int status;
    const char *data;
    const char *reason;
} held;

static void logf_(const bm_host *host, int level, const char *format, const char *detail) {
    char line[512];
    int length = snprintf(line, sizeof line, format, detail);
    if (length > 0) host->log(host->ctx, level, line, (size_t)length < sizeof line ? (size_t)length : sizeof line - 1);
}

/* ---- A small reader for the config's flat JSON object of strings --------------------------
 * A real plugin would take a JSON library (cJSON, jansson); C has none in its standard
 * library, and this kit builds with nothing but SQLite. It reads "name": "value" pairs, with
 * \" and \\ escapes, and refuses anything else with a message. */
static int json_string_field(bm_str config, const char *name, char *value, size_t cap, char *error, size_t error_cap) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", name);
    size_t plen = strlen(pattern);
    int named = 0;
    for (size_t i = 0; i + plen <= config.len; i++) {
        if (memcmp(config.ptr + i, pattern, plen) != 0) continue;
        named = 1;
        size_t at = i + plen;
        while (at < config.len && (config.ptr[at] == ' ' || config.ptr[at] == '\t' || config.ptr[at] == '\n')) at++;
        if (at >= config.len || config.ptr[at] != ':') break;
        at++;
        while (at < config.len && (config.ptr[at] == ' ' || config.ptr[at] == '\t' || config.ptr[at] == '\n')) at++;
        if (at >= config.len || config.ptr[at] != '"') break;
        size_t out = 0;
        for (at++; at < config.len && config.ptr[at] != '"'; at++) {
            char c = config.ptr[at];
            if (c == '\\' && at + 1 < config.len) c = config.ptr[++at];
            if (out + 1 >= cap) {
                snprintf(error, error_cap, "config: \"%s\" is longer than %zu bytes", name, cap - 1);
                return -1;
            }
            value[out++] = c;
        }
        value[out] = 0;
        return 1;
    }
    if (named) {
        snprintf(error, error_cap, "config: \"%s\" must be a string", name);
        return -1;
    }
    return 0;
}

static int valid_identifier(const char *name) {
    if (!*name) return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_')) return 0;
    return 1;
}

static void *sink_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)key;
    if (!BM_HOST_HAS(host, pause)) {
        snprintf(error, error_cap, "needs a Batchman host of ABI 1.1 or later (manifest_dir, pause)");
        return NULL;
    }
    char database[1024] = "rows.db", table[64] = "jobs", path[2048];
    if (json_string_field(config, "database", database, sizeof database, error, error_cap) < 0) return NULL;
    if (json_string_field(config, "table", table, sizeof table, error, error_cap) < 0) return NULL;
    if (!valid_identifier(table)) {
        snprintf(error, error_cap, "config: \"table\" must be letters, digits and _, got \"%s\"", table);
        return NULL;
    }
    if (database[0] == '/') snprintf(path, sizeof path, "%s", database);
    else snprintf(path, sizeof path, "%.*s/%s", (int)host->manifest_dir.len, host->manifest_dir.ptr, database);

    sink *instance = calloc(1, sizeof *instance);
    if (!instance) return NULL;
    instance->host = host;
    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS %s (key TEXT NOT NULL, id TEXT NOT NULL, payload TEXT, "
             "UNIQUE (key, id))", table);
    char *message = NULL;
    if (sqlite3_open(path, &instance->db) != SQLITE_OK || sqlite3_exec(instance->db, sql, 0, 0, &message) != SQLITE_OK) {
        snprintf(error, error_cap, "cannot open %s: %s", path, message ? message : sqlite3_errmsg(instance->db));
        sqlite3_free(message);
        sqlite3_close(instance->db);
        free(instance);
        return NULL;
    }
    /* Several keys' instances may write the same file: a writer waits up to 1 s for another's
     * transaction before SQLITE_BUSY (then the jobs are retried after 200 ms). */
    sqlite3_busy_timeout(instance->db, 1000);
    snprintf(sql, sizeof sql, "INSERT INTO %s (key, id, payload) VALUES (?1, ?2, ?3)", table);
    if (sqlite3_prepare_v2(instance->db, sql, -1, &instance->insert, NULL) != SQLITE_OK) {
        snprintf(error, error_cap, "cannot prepare the insert: %s", sqlite3_errmsg(instance->db));
        sqlite3_close(instance->db);
        free(instance);
        return NULL;
    }
    logf_(host, BM_LOG_INFO, "sqlite_sink: writing to %s", path);
    return instance;
}

static unsigned long long now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (unsigned long long)now.tv_sec * 1000000000ULL + (unsigned long long)now.tv_nsec;
}

/* Every job not yet answered gets BM_RETRY with `reason` and `retry_after_ms`. */
static void retry_all(const bm_batch *batch, const bm_emitter *out, const char *message, const char *reason, uint64_t retry_after_ms) {
    bm_str token = {reason, strlen(reason)};
    for (size_t i = 0; i < batch->count; i++) out->emit_detailed(out->ctx, i, BM_RETRY, message, strlen(message), token, retry_after_ms);
}

static int sink_process(void *opaque, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    sink *instance = opaque;
    const bm_host *host = instance->host;
    held *outcomes = calloc(batch->count ? batch->count : 1, sizeof *outcomes);
    if (!outcomes) {
        snprintf(error, error_cap, "out of memory");
        return BM_RETRY;
    }
    int begun = sqlite3_exec(instance->db, "BEGIN IMMEDIATE", 0, 0, 0);
    if (begun == SQLITE_BUSY) {
        free(outcomes);
        retry_all(batch, out, "the database is locked by another writer", "busy", 200);
        return 0;
    }
    if (begun != SQLITE_OK) {
        logf_(host, BM_LOG_ERROR, "sqlite_sink: cannot begin a transaction (%s); pausing the key for 5 s", sqlite3_errmsg(instance->db));
        host->pause(host->ctx, batch->key, 5000);
        free(outcomes);
        retry_all(batch, out, "the database cannot be written", "unavailable", 5000);
        return 0;
    }
    for (size_t i = 0; i < batch->count; i++) {
        const bm_job *job = &batch->jobs[i];
        sqlite3_reset(instance->insert);
        sqlite3_bind_text(instance->insert, 1, batch->key.ptr, (int)batch->key.len, SQLITE_TRANSIENT);
        sqlite3_bind_text(instance->insert, 2, job->id.ptr, (int)job->id.len, SQLITE_TRANSIENT);
        sqlite3_bind_text(instance->insert, 3, job->payload.ptr, (int)job->payload.len, SQLITE_TRANSIENT);
        int step = sqlite3_step(instance->insert);
        if (step == SQLITE_DONE) {
            outcomes[i] = (held){BM_OK, "{\"stored\":true}", ""};
        } else if (step == SQLITE_CONSTRAINT) {
            /* The row is there. A redelivery found its own earlier write: done. A first delivery
             * found another job's: a real duplicate. */
            outcomes[i] = (job->flags & BM_JOB_REDELIVERED) ? (held){BM_OK, "{\"stored\":true,\"again\":true}", ""}
                                                             : (held){BM_FAILED, "a row with this key and id exists", "constraint"};
        } else if (step == SQLITE_BUSY) {
            outcomes[i] = (held){BM_RETRY, "the database is locked by another writer", "busy"};
        } else {
            outcomes[i] = (held){BM_FAILED, sqlite3_errmsg(instance->db), "sqlite"};
        }
    }
    /* The host stops waiting at the deadline, answers these jobs and retries them: committing
     * now would store rows that the retry stores again. */
    if (batch->deadline_ns != 0 && now_ns() > batch->deadline_ns) {
        sqlite3_exec(instance->db, "ROLLBACK", 0, 0, 0);
        free(outcomes);
        snprintf(error, error_cap, "past the call's deadline before COMMIT; rolled back");
        return BM_RETRY;
    }
    int committed = sqlite3_exec(instance->db, "COMMIT", 0, 0, 0);
    if (committed != SQLITE_OK) {
        sqlite3_exec(instance->db, "ROLLBACK", 0, 0, 0);
        free(outcomes);
        retry_all(batch, out, "COMMIT failed", committed == SQLITE_BUSY ? "busy" : "unavailable", committed == SQLITE_BUSY ? 200 : 1000);
        return 0;
    }
    /* Committed: now the outcomes are true, and final. */
    for (size_t i = 0; i < batch->count; i++) {
        bm_str reason = {outcomes[i].reason, strlen(outcomes[i].reason)};
        out->emit_detailed(out->ctx, i, outcomes[i].status, outcomes[i].data, strlen(outcomes[i].data), reason,
                           outcomes[i].status == BM_RETRY ? 200 : 0);
    }
    free(outcomes);
    return 0;
}

static void sink_destroy(void *opaque) {
    sink *instance = opaque;
    sqlite3_finalize(instance->insert);
    sqlite3_close(instance->db);
    free(instance);
}

/* One call at a time per instance (no BM_FLAG_CONCURRENT): SQLite has one writer anyway. */
static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC, .struct_size = sizeof(bm_plugin), .abi_major = BM_ABI_MAJOR, .abi_minor = BM_ABI_MINOR,
    .flags = 0, .name = "sqlite_sink", .version = "1.0.0",
    .create = sink_create, .process_batch = sink_process, .destroy = sink_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
