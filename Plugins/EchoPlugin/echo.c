/* EchoPlugin: answers every job with its own payload. The smallest useful plugin. */
#include "batchman_plugin.h"

static void *echo_create(const bm_host *host, bm_str key, bm_str config_json, char *error, size_t error_cap) {
    (void)host; (void)key; (void)config_json; (void)error; (void)error_cap;
    static int instance; /* stateless: every key can share one non-NULL pointer */
    return &instance;
}

static int echo_process_batch(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)instance; (void)error; (void)error_cap;
    for (size_t i = 0; i < batch->count; i++) {
        out->emit(out->ctx, i, BM_OK, batch->jobs[i].payload.ptr, batch->jobs[i].payload.len);
    }
    return 0;
}

static void echo_destroy(void *instance) { (void)instance; }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC,
    .struct_size = sizeof(bm_plugin),
    .abi_major = BM_ABI_MAJOR,
    .abi_minor = BM_ABI_MINOR,
    .flags = BM_FLAG_CONCURRENT, /* no state, so concurrent calls are safe */
    .name = "echo",
    .version = "1.0.0",
    .create = echo_create,
    .process_batch = echo_process_batch,
    .destroy = echo_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
