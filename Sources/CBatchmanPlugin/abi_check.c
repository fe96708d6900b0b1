/* Compiles the header as C99 with the package's warnings, so a broken header fails the build. */
#include "batchman_plugin.h"

_Static_assert(sizeof(bm_str) == 2 * sizeof(void *), "bm_str is two words");
_Static_assert(offsetof(bm_plugin, magic) == 0, "magic comes first");
_Static_assert(offsetof(bm_plugin, struct_size) == 4, "struct_size follows magic");
