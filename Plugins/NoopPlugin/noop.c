/* NoopPlugin: completes every job with an empty result, doing nothing else. The benchmark's
 * measure of what the host costs around a plugin. */
#include "batchman_plugin.h"

static void *noop_create(const bm_host *host, bm_str key, bm_str config_json, char *error, size_t error_cap) {
    (void)host; (void)key; (void)config_json; (void)error; (void)error_cap;
    static int instance;
    return &instance;
}

static int noop_process_batch(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)instance; (void)error; (void)error_cap;
    for (size_t i = 0; i < batch->count; i++) out->emit(out->ctx, i, BM_OK, "", 0);
    return 0;
}

static void noop_destroy(void *instance) { (void)instance; }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC,
    .struct_size = sizeof(bm_plugin),
    .abi_major = BM_ABI_MAJOR,
    .abi_minor = BM_ABI_MINOR,
    .flags = BM_FLAG_CONCURRENT,
    .name = "noop",
    .version = "1.0.0",
    .create = noop_create,
    .process_batch = noop_process_batch,
    .destroy = noop_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
