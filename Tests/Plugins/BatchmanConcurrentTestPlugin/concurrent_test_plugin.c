/* The test plugin (../BatchmanTestPlugin/test_plugin.c, which documents its modes) built with
 * BM_FLAG_CONCURRENT: the host may run several process_batch calls on one instance at once, and
 * the plugin does not fail them. For the tests of shared instances. */
#include "batchman_plugin.h"

#define TEST_PLUGIN_FLAGS BM_FLAG_CONCURRENT
#define TEST_PLUGIN_NAME "test-concurrent"
#include "../BatchmanTestPlugin/test_plugin.c"
