/* A plugin that uses everything ABI 1.1 added, for the host's tests. Each job's payload is a
 * string naming what to do:
 *
 *   "report"             completes with what the plugin was told:
 *                        {"attempt":N,"redelivered":B,"deadline":D,"manifestDir":"...","debug":B}
 *                        where D is "none" (deadline_ns 0), "ahead" or "past"
 *   "fail:<token>"       BM_FAILED with reason <token> (emit_detailed)
 *   "retry:<ms>"         BM_RETRY with retry_after_ms <ms> on attempt 1, then completes "retried"
 *   "pause:<ms>"         on attempt 1: pauses the key for <ms>, then BM_RETRY; later completes
 *                        "resumed"
 *   "pause-key:<key>"    pauses <key> for 60 s and completes with {"paused":<what pause returned>}
 *   "bad-reason"         emit_detailed with the reason "not a token"; reports what it returned
 *   "stale"              completes "stale" and also emits through the previous call's emitter
 *                        (a plugin that keeps its emitter): reports nothing of that, on purpose
 *   anything else        completes with the payload
 */
#include "batchman_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct hints {
    const bm_host *host;
} hints;

static const bm_emitter *kept;  /* the "stale" mode's emitter of an earlier call */

static void *hints_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)key; (void)config;
    if (!BM_HOST_HAS(host, pause)) {
        snprintf(error, error_cap, "needs a host of ABI 1.1 (struct_size %u)", host->struct_size);
        return NULL;
    }
    hints *instance = calloc(1, sizeof *instance);
    if (instance) instance->host = host;
    return instance;
}

static unsigned long long now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (unsigned long long)now.tv_sec * 1000000000ULL + (unsigned long long)now.tv_nsec;
}

/* The payload's string, without its quotes, into `text`; 0 if it is not a plain string. */
static int payload_text(bm_str payload, char *text, size_t cap) {
    if (payload.len < 2 || payload.ptr[0] != '"' || payload.ptr[payload.len - 1] != '"' || payload.len - 2 >= cap) return 0;
    memcpy(text, payload.ptr + 1, payload.len - 2);
    text[payload.len - 2] = 0;
    return 1;
}

static int hints_process(void *opaque, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)error; (void)error_cap;
    hints *instance = opaque;
    const bm_host *host = instance->host;
    char text[256], result[1024];
    for (size_t i = 0; i < batch->count; i++) {
        const bm_job *job = &batch->jobs[i];
        if (!payload_text(job->payload, text, sizeof text)) {
            out->emit(out->ctx, i, BM_OK, job->payload.ptr, job->payload.len);
        } else if (strcmp(text, "report") == 0) {
            const char *deadline = batch->deadline_ns == 0 ? "none" : batch->deadline_ns > now_ns() ? "ahead" : "past";
            int length = snprintf(result, sizeof result,
                                  "{\"attempt\":%u,\"redelivered\":%s,\"deadline\":\"%s\",\"manifestDir\":\"%.*s\",\"debug\":%s}",
                                  job->attempt, (job->flags & BM_JOB_REDELIVERED) ? "true" : "false", deadline,
                                  (int)host->manifest_dir.len, host->manifest_dir.ptr, (host->flags & BM_HOST_DEBUG) ? "true" : "false");
            out->emit(out->ctx, i, BM_OK, result, (size_t)length);
        } else if (strncmp(text, "fail:", 5) == 0) {
            bm_str reason = {text + 5, strlen(text + 5)};
            out->emit_detailed(out->ctx, i, BM_FAILED, "failed with a reason", 20, reason, 0);
        } else if (strncmp(text, "retry:", 6) == 0) {
            if (job->attempt == 1) {
                bm_str reason = {"busy", 4};
                out->emit_detailed(out->ctx, i, BM_RETRY, "locked", 6, reason, strtoull(text + 6, NULL, 10));
            } else {
                out->emit(out->ctx, i, BM_OK, "\"retried\"", 9);
            }
        } else if (strncmp(text, "pause:", 6) == 0) {
            if (job->attempt == 1) {
                int paused = host->pause(host->ctx, batch->key, strtoull(text + 6, NULL, 10));
                int length = snprintf(result, sizeof result, "paused: %d", paused);
                out->emit(out->ctx, i, BM_RETRY, result, (size_t)length);
            } else {
                out->emit(out->ctx, i, BM_OK, "\"resumed\"", 9);
            }
        } else if (strncmp(text, "pause-key:", 10) == 0) {
            bm_str other = {text + 10, strlen(text + 10)};
            int length = snprintf(result, sizeof result, "{\"paused\":%d}", host->pause(host->ctx, other, 60000));
            out->emit(out->ctx, i, BM_OK, result, (size_t)length);
        } else if (strcmp(text, "bad-reason") == 0) {
            bm_str reason = {"not a token", 11};
            int refused = out->emit_detailed(out->ctx, i, BM_FAILED, "x", 1, reason, 0);
            int length = snprintf(result, sizeof result, "{\"emitDetailedReturned\":%d}", refused);
            out->emit(out->ctx, i, BM_OK, result, (size_t)length);
        } else if (strcmp(text, "stale") == 0) {
            out->emit(out->ctx, i, BM_OK, "\"stale\"", 7);
            if (kept) kept->emit(kept->ctx, i, BM_OK, "\"from an earlier call\"", 22);
            kept = out;
        } else {
            out->emit(out->ctx, i, BM_OK, job->payload.ptr, job->payload.len);
        }
    }
    return 0;
}

static void hints_destroy(void *instance) { free(instance); }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC, .struct_size = sizeof(bm_plugin), .abi_major = BM_ABI_MAJOR, .abi_minor = BM_ABI_MINOR,
    .flags = 0, .name = "hints", .version = "1.1.0",
    .create = hints_create, .process_batch = hints_process, .destroy = hints_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
