/* A plugin as it was written against ABI 1.0, built against that version's header (kept
 * verbatim beside this file): what a plugin binary shipped before 1.1 does, which a 1.1 host
 * must run unchanged. It uses every part of 1.0: bm_host.log, the key and config in create,
 * each job's id, payload and attempt, all three statuses and process_batch's return.
 *
 *   payload "fail"   BM_FAILED "failed on purpose"
 *   payload "retry"  BM_RETRY "try again" on attempt 1, then completes
 *   anything else    completes with {"id":"<id>","attempt":N,"key":"<key>","config":<config>}
 */
#include "batchman_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct legacy {
    const bm_host *host;
    char key[64];
    char config[256];
} legacy;

static void *legacy_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)error; (void)error_cap;
    legacy *instance = calloc(1, sizeof *instance);
    if (!instance) return NULL;
    instance->host = host;
    snprintf(instance->key, sizeof instance->key, "%.*s", (int)key.len, key.ptr);
    snprintf(instance->config, sizeof instance->config, "%.*s", (int)config.len, config.ptr);
    const char message[] = "legacy 1.0 plugin created";
    host->log(host->ctx, BM_LOG_INFO, message, sizeof message - 1);
    return instance;
}

static int is(bm_str payload, const char *text) {
    return payload.len == strlen(text) && memcmp(payload.ptr, text, payload.len) == 0;
}

static int legacy_process(void *opaque, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)error; (void)error_cap;
    legacy *instance = opaque;
    char result[512];
    for (size_t i = 0; i < batch->count; i++) {
        const bm_job *job = &batch->jobs[i];
        if (is(job->payload, "\"fail\"")) {
            out->emit(out->ctx, i, BM_FAILED, "failed on purpose", 17);
        } else if (is(job->payload, "\"retry\"") && job->attempt == 1) {
            out->emit(out->ctx, i, BM_RETRY, "try again", 9);
        } else {
            int length = snprintf(result, sizeof result, "{\"id\":\"%.*s\",\"attempt\":%u,\"key\":\"%s\",\"config\":%s}",
                                  (int)job->id.len, job->id.ptr, job->attempt, instance->key, instance->config);
            out->emit(out->ctx, i, BM_OK, result, (size_t)length);
        }
    }
    return 0;
}

static void legacy_destroy(void *instance) { free(instance); }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC, .struct_size = sizeof(bm_plugin), .abi_major = BM_ABI_MAJOR, .abi_minor = BM_ABI_MINOR,
    .flags = 0, .name = "legacy", .version = "1.0.0",
    .create = legacy_create, .process_batch = legacy_process, .destroy = legacy_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
