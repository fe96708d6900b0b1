/* A plugin that takes only payloads with a "name" field, as a real sink does: every other job
 * fails with "missing field name". plugin-test's synthetic jobs have no such field, so every
 * one of them fails; the author's own jobs (--jobs FILE) complete. */
#include "batchman_plugin.h"

#include <stdlib.h>
#include <string.h>

static void *needs_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)host; (void)key; (void)config; (void)error; (void)error_cap;
    return malloc(1);
}

static int has_name(bm_str payload) {
    static const char field[] = "\"name\"";
    for (size_t i = 0; i + sizeof field - 1 <= payload.len; i++)
        if (memcmp(payload.ptr + i, field, sizeof field - 1) == 0) return 1;
    return 0;
}

static int needs_process(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)instance; (void)error; (void)error_cap;
    for (size_t i = 0; i < batch->count; i++) {
        if (has_name(batch->jobs[i].payload)) out->emit(out->ctx, i, BM_OK, "{\"stored\":true}", 15);
        else out->emit(out->ctx, i, BM_FAILED, "missing field name", 18);
    }
    return 0;
}

static void needs_destroy(void *instance) { free(instance); }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC, .struct_size = sizeof(bm_plugin), .abi_major = BM_ABI_MAJOR, .abi_minor = BM_ABI_MINOR,
    .flags = 0, .name = "needs-name", .version = "1.0.0",
    .create = needs_create, .process_batch = needs_process, .destroy = needs_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
