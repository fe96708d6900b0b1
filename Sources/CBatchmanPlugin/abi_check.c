/* Compiles the header as C99 with the package's warnings, so a broken header fails the build. */
#include "batchman_plugin.h"

_Static_assert(sizeof(bm_str) == 2 * sizeof(void *), "bm_str is two words");
_Static_assert(offsetof(bm_plugin, magic) == 0, "magic comes first");
_Static_assert(offsetof(bm_plugin, struct_size) == 4, "struct_size follows magic");

/* 1.1's bm_job.flags lies in what was padding after `attempt` in 1.0: a 1.0 plugin indexes
 * batch->jobs with the same stride. */
_Static_assert(sizeof(void *) != 8 || sizeof(bm_job) == 40, "bm_job is 40 bytes on 64-bit, as in 1.0");
_Static_assert(offsetof(bm_job, flags) == offsetof(bm_job, attempt) + 4, "flags follows attempt");
/* Fields only ever appended: 1.0's fields keep their offsets. */
_Static_assert(offsetof(bm_host, log) == 8 + sizeof(void *), "bm_host 1.0 fields first");
_Static_assert(offsetof(bm_host, manifest_dir) == offsetof(bm_host, log) + sizeof(void *), "1.1 fields after log");
_Static_assert(offsetof(bm_batch, deadline_ns) == offsetof(bm_batch, count) + sizeof(size_t), "deadline_ns appended");
_Static_assert(offsetof(bm_emitter, emit_detailed) == 2 * sizeof(void *), "emit_detailed appended");
