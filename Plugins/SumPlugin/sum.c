/*
 * SumPlugin: an analytics aggregator that shows what batching buys. It reads a number from
 * each job (the payload itself, or its "value" field), and answers every job of the batch with
 * the batch's aggregate: {"batch":ID,"count":N,"sum":S,"mean":M,"min":A,"max":B}. One pass per
 * batch instead of one round trip per job; a job without a number fails alone.
 *
 * Config (optional): {"field": "value"} names the field to read.
 */
#include "batchman_plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sum_instance {
    char field[64];
} sum_instance;

/* Finds `"field":` at the top level of a flat JSON object and returns where its value starts. */
static const char *find_field(const char *json, size_t len, const char *field) {
    size_t field_len = strlen(field);
    for (size_t i = 0; i + field_len + 2 < len; i++) {
        if (json[i] == '"' && memcmp(json + i + 1, field, field_len) == 0 && json[i + 1 + field_len] == '"') {
            size_t j = i + field_len + 2;
            while (j < len && (json[j] == ' ' || json[j] == '\t')) j++;
            if (j < len && json[j] == ':') return json + j + 1;
        }
    }
    return NULL;
}

/* Reads a number from a payload: a bare number, or an object's `field`. */
static int read_number(const bm_str payload, const char *field, double *value) {
    char buffer[512];
    if (payload.len == 0 || payload.len >= sizeof buffer) return 0;
    memcpy(buffer, payload.ptr, payload.len);
    buffer[payload.len] = '\0';
    const char *start = buffer;
    while (*start == ' ') start++;
    if (*start == '{') {
        start = find_field(buffer, payload.len, field);
        if (start == NULL) return 0;
    }
    char *end = NULL;
    *value = strtod(start, &end);
    return end != start && isfinite(*value);
}

static void *sum_create(const bm_host *host, bm_str key, bm_str config_json, char *error, size_t error_cap) {
    (void)host; (void)key;
    sum_instance *instance = calloc(1, sizeof *instance);
    if (instance == NULL) {
        snprintf(error, error_cap, "out of memory");
        return NULL;
    }
    strcpy(instance->field, "value");
    const char *field = find_field(config_json.ptr, config_json.len, "field");
    if (field != NULL) {
        while (*field == ' ') field++;
        const char *end = *field == '"' ? memchr(field + 1, '"', config_json.len - (size_t)(field + 1 - config_json.ptr)) : NULL;
        size_t field_len = end ? (size_t)(end - field - 1) : 0;
        if (end == NULL || field_len == 0 || field_len >= sizeof instance->field) {
            snprintf(error, error_cap, "config.field must be a non-empty string of at most %zu bytes", sizeof instance->field - 1);
            free(instance);
            return NULL;
        }
        memcpy(instance->field, field + 1, field_len);
        instance->field[field_len] = '\0';
    }
    return instance;
}

static int sum_process_batch(void *opaque, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) {
    (void)error; (void)error_cap;
    const sum_instance *instance = opaque;
    double sum = 0, min = INFINITY, max = -INFINITY, value;
    size_t count = 0;
    for (size_t i = 0; i < batch->count; i++) {
        if (!read_number(batch->jobs[i].payload, instance->field, &value)) continue;
        sum += value;
        min = value < min ? value : min;
        max = value > max ? value : max;
        count++;
    }
    char aggregate[256];
    int length = snprintf(aggregate, sizeof aggregate,
                          "{\"batch\":%llu,\"count\":%zu,\"sum\":%.17g,\"mean\":%.17g,\"min\":%.17g,\"max\":%.17g}",
                          (unsigned long long)batch->id, count, sum, count ? sum / (double)count : 0.0,
                          count ? min : 0.0, count ? max : 0.0);
    char message[128];
    int message_length = snprintf(message, sizeof message, "payload has no number (expected a number or {\"%s\": number})", instance->field);
    for (size_t i = 0; i < batch->count; i++) {
        if (read_number(batch->jobs[i].payload, instance->field, &value)) {
            out->emit(out->ctx, i, BM_OK, aggregate, (size_t)length);
        } else {
            out->emit(out->ctx, i, BM_FAILED, message, (size_t)message_length);
        }
    }
    return 0;
}

static void sum_destroy(void *instance) { free(instance); }

static const bm_plugin descriptor = {
    .magic = BM_PLUGIN_MAGIC,
    .struct_size = sizeof(bm_plugin),
    .abi_major = BM_ABI_MAJOR,
    .abi_minor = BM_ABI_MINOR,
    .flags = 0,
    .name = "sum",
    .version = "1.0.0",
    .create = sum_create,
    .process_batch = sum_process_batch,
    .destroy = sum_destroy,
};

const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
