/* A C target needs a source file; everything this one offers is in include/batchman_plugin.h. */
#include "batchman_plugin.h"
