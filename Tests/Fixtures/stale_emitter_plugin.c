/* A plugin that keeps its emitter: each call completes its jobs, and then also emits through
 * the emitter it kept from the call before (deferred outcomes "flushed" late). The host
 * refuses those emits (-1); batchman plugin-test must fail it. */
#include "batchman_plugin.h"

#include <stdlib.h>

static const bm_emitter *kept;

static void *stale_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)host; (void)key; (void)config; (void)error; (void)error_cap;
    return malloc(1);
}

static int stale_process(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)instance; (void)error; (void)error_cap;
    for (size_t i = 0; i < batch->count; i++) out->emit(out->ctx, i, BM_OK, "{}", 2);
    if (kept) kept->emit(kept->ctx, 0, BM_OK, "{}", 2);
    kept = out;
    return 0;
}

static void stale_destroy(void *instance) { free(instance); }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC, .struct_size = sizeof(bm_plugin), .abi_major = BM_ABI_MAJOR, .abi_minor = BM_ABI_MINOR,
    .flags = 0, .name = "stale", .version = "1.0.0",
    .create = stale_create, .process_batch = stale_process, .destroy = stale_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
