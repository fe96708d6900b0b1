/* A plugin whose every job completes with the string ANSWER: two builds of it (-DANSWER='"v1"'
 * and '"v2"') tell which build answered, for the reload tests. */
#include "batchman_plugin.h"

#include <stdlib.h>
#include <string.h>

#ifndef ANSWER
#define ANSWER "\"v1\""
#endif

static void *answer_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) {
    (void)host; (void)key; (void)config; (void)error; (void)error_cap;
    return malloc(1);
}

static int answer_process(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)instance; (void)error; (void)error_cap;
    for (size_t i = 0; i < batch->count; i++) out->emit(out->ctx, i, BM_OK, ANSWER, strlen(ANSWER));
    return 0;
}

static void answer_destroy(void *instance) { free(instance); }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC, .struct_size = sizeof(bm_plugin), .abi_major = BM_ABI_MAJOR, .abi_minor = BM_ABI_MINOR,
    .flags = 0, .name = "answer", .version = "1.0.0",
    .create = answer_create, .process_batch = answer_process, .destroy = answer_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
