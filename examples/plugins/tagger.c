/* Tagger: answers each job with {"batch": ID, "size": N, "seen": <payload>}. */
#include "batchman_plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *tagger_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)key; (void)config; (void)error; (void)error_cap;
    static const char hello[] = "tagger ready";
    host->log(host->ctx, BM_LOG_INFO, hello, sizeof hello - 1);
    return malloc(1); /* any non-NULL pointer; NULL would refuse the key */
}

static int tagger_process_batch(void *instance, const bm_batch *batch, const bm_emitter *out,
                                char *error, size_t error_cap) {
    (void)instance;
    for (size_t i = 0; i < batch->count; i++) {
        const bm_str payload = batch->jobs[i].payload;
        size_t cap = payload.len + 64;
        char *result = malloc(cap);
        if (result == NULL) {
            snprintf(error, error_cap, "out of memory");
            return BM_RETRY; /* every job not yet emitted is retried later */
        }
        int len = snprintf(result, cap, "{\"batch\":%llu,\"size\":%zu,\"seen\":%.*s}",
                           (unsigned long long)batch->id, batch->count, (int)payload.len, payload.ptr);
        out->emit(out->ctx, i, BM_OK, result, (size_t)len); /* the host copies the bytes */
        free(result);
    }
    return 0;
}

static void tagger_destroy(void *instance) { free(instance); }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC,
    .struct_size = sizeof(bm_plugin),
    .abi_major = BM_ABI_MAJOR,
    .abi_minor = BM_ABI_MINOR,
    .flags = 0,
    .name = "tagger",
    .version = "1.0.0",
    .create = tagger_create,
    .process_batch = tagger_process_batch,
    .destroy = tagger_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
