/* The static descriptor of the Go kit's plugin, in C: Go cannot make a C struct of function
 * pointers with static storage, but C code in the package can point at the //export-ed
 * functions. The casts only add the header's `const`s. */
#include "batchman_plugin.h"
#include "_cgo_export.h"

static const bm_plugin descriptor = {
    BM_PLUGIN_MAGIC,
    sizeof(bm_plugin),
    BM_ABI_MAJOR,
    BM_ABI_MINOR,
    BM_FLAG_CONCURRENT,
    "wordcount",
    "1.0.0",
    (void *(*)(const bm_host *, bm_str, bm_str, char *, size_t))wordcountCreate,
    (int (*)(void *, const bm_batch *, const bm_emitter *, char *, size_t))wordcountProcessBatch,
    wordcountDestroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
