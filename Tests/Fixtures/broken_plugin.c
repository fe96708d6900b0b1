/*
 * Deliberately broken plugins for the loader's tests: compile with one of
 *   -DWRONG_MAGIC -DABI_2 -DTOO_SMALL -DNO_ENTRY -DNULL_DESCRIPTOR -DNO_PROCESS
 * and none of them for a plugin that works (it echoes).
 */
#include "batchman_plugin.h"

static void *create(const bm_host *host, bm_str key, bm_str config, char *error, size_t cap) {
    (void)host; (void)key; (void)config; (void)error; (void)cap;
    static int instance;
    return &instance;
}

static int process_batch(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t cap) {
    (void)instance; (void)error; (void)cap;
    for (size_t i = 0; i < batch->count; i++) {
        out->emit(out->ctx, i, BM_OK, batch->jobs[i].payload.ptr, batch->jobs[i].payload.len);
    }
    return 0;
}

static void destroy(void *instance) { (void)instance; }

static const bm_plugin descriptor = {
#ifdef WRONG_MAGIC
    .magic = 0xDEADBEEFU,
#else
    .magic = BM_PLUGIN_MAGIC,
#endif
#ifdef TOO_SMALL
    .struct_size = 16,
#else
    .struct_size = sizeof(bm_plugin),
#endif
#ifdef ABI_2
    .abi_major = 2,
    .abi_minor = 3,
#else
    .abi_major = BM_ABI_MAJOR,
    .abi_minor = BM_ABI_MINOR,
#endif
    .flags = 0,
    .name = "broken",
    .version = "0.0.0",
    .create = create,
#ifdef NO_PROCESS
    .process_batch = 0,
#else
    .process_batch = process_batch,
#endif
    .destroy = destroy,
};

#ifdef NO_ENTRY
const bm_plugin *batchman_plugin_v0(void) { return &descriptor; }
#elif defined(NULL_DESCRIPTOR)
const bm_plugin *batchman_plugin_v1(void) { return 0; }
#else
const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
#endif
