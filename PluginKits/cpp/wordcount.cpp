// wordcount: a Batchman plugin in C++, the C++ kit's starting point.
//
// Answers each job with {"words":N,"total":T}: N counts the words of the job's payload (runs of
// ASCII letters and digits at least `minLength` long, from the key's config, default 1), T the
// words this key's instance has counted so far. Build and check (see README.md):
//
//   c++ -std=c++17 -O2 -shared -fPIC -Wall -Wextra -o libwordcount.so wordcount.cpp
//   batchman plugin-test ./libwordcount.so --config '{"minLength": 2}'
#include "batchman_plugin.h"

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

namespace {

// One instance per key, owned by the host between create() and destroy(): plain RAII, with
// `new` in create and `delete` in destroy.
class WordCount {
public:
    WordCount(const bm_host *host, size_t min_length) : host_(host), min_length_(min_length) {}

    // BM_FLAG_CONCURRENT is set, so several threads may count at once: `total_` is atomic and
    // nothing else changes after create().
    size_t count(std::string_view text) {
        size_t words = 0, run = 0;
        for (unsigned char c : text) {
            if (std::isalnum(c)) {
                run++;
            } else {
                words += run >= min_length_ ? 1 : 0;
                run = 0;
            }
        }
        words += run >= min_length_ ? 1 : 0;
        total_ += words;
        return words;
    }

    unsigned long long total() const { return total_.load(); }

    void log(int level, const std::string &message) const { host_->log(host_->ctx, level, message.data(), message.size()); }

private:
    const bm_host *host_;
    const size_t min_length_;
    std::atomic<unsigned long long> total_{0};
};

std::string_view view(bm_str s) { return std::string_view(s.ptr, s.len); }

// The config is a JSON object such as {"minLength": 2}. A real plugin would use a JSON library;
// this kit depends on nothing but the header, so it reads its one field by hand.
bool read_min_length(std::string_view config, size_t &min_length, std::string &problem) {
    const std::string_view field = "\"minLength\"";
    size_t at = config.find(field);
    if (at == std::string_view::npos) return true;  // absent: the default
    at = config.find_first_not_of(" \t\r\n", at + field.size());
    if (at == std::string_view::npos || config[at] != ':') {
        problem = "config: expected \"minLength\": <a whole number from 1 to 100>";
        return false;
    }
    at = config.find_first_not_of(" \t\r\n", at + 1);
    size_t value = 0, digits = 0;
    while (at < config.size() && std::isdigit(static_cast<unsigned char>(config[at])) && digits < 4) {
        value = value * 10 + static_cast<size_t>(config[at++] - '0');
        digits++;
    }
    if (digits == 0 || value < 1 || value > 100) {
        problem = "config: \"minLength\" must be a whole number from 1 to 100";
        return false;
    }
    min_length = value;
    return true;
}

void copy_message(const std::string &message, char *error, size_t error_cap) {
    if (error_cap > 0) std::snprintf(error, error_cap, "%s", message.c_str());
}

// No exception may cross into the host (it is C): each entry point catches everything.
void *wordcount_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) noexcept {
    try {
        size_t min_length = 1;
        std::string problem;
        if (!read_min_length(view(config), min_length, problem)) {
            copy_message(problem, error, error_cap);
            return nullptr;  // refuses the key: the host says why and does not start
        }
        auto *instance = new WordCount(host, min_length);
        instance->log(BM_LOG_INFO, "wordcount ready for key \"" + std::string(view(key)) + "\" (minLength " + std::to_string(min_length) + ")");
        return instance;
    } catch (const std::exception &failure) {
        copy_message(std::string("create failed: ") + failure.what(), error, error_cap);
        return nullptr;
    }
}

int wordcount_process_batch(void *instance, const bm_batch *batch, const bm_emitter *out, char *error, size_t error_cap) noexcept {
    try {
        auto *counter = static_cast<WordCount *>(instance);
        std::string result;
        for (size_t i = 0; i < batch->count; i++) {
            const size_t words = counter->count(view(batch->jobs[i].payload));
            result = "{\"words\":" + std::to_string(words) + ",\"total\":" + std::to_string(counter->total()) + "}";
            out->emit(out->ctx, i, BM_OK, result.data(), result.size());  // the host copies the bytes
        }
        return 0;
    } catch (const std::exception &failure) {
        // Jobs not emitted yet are retried (std::bad_alloc, say, is usually transient).
        copy_message(std::string("wordcount: ") + failure.what(), error, error_cap);
        return BM_RETRY;
    }
}

void wordcount_destroy(void *instance) noexcept { delete static_cast<WordCount *>(instance); }

const bm_plugin descriptor = {
    BM_PLUGIN_MAGIC,
    sizeof(bm_plugin),
    BM_ABI_MAJOR,
    BM_ABI_MINOR,
    BM_FLAG_CONCURRENT,
    "wordcount",
    "1.0.0",
    wordcount_create,
    wordcount_process_batch,
    wordcount_destroy,
};

}  // namespace

extern "C" const bm_plugin *batchman_plugin_v1(void) { return &descriptor; }
