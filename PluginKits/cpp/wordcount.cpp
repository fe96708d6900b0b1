// wordcount: a Batchman plugin in C++, the C++ kit's starting point.
//
// Answers each job with {"words":N,"total":T}: N counts the words of the job's payload (runs of
// ASCII letters and digits at least `minLength` long, from the key's config, default 1), T the
// words this key's instance has counted so far. A job of more than `maxWords` words (if set)
// fails with the reason "too_many_words". Build and check (see README.md):
//
//   c++ -std=c++17 -O2 -shared -fPIC -Wall -Wextra -o libwordcount.so wordcount.cpp
//   batchman plugin-test ./libwordcount.so --config '{"minLength": 2}'
#include "batchman_plugin.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

namespace {

// One instance per key, owned by the host between create() and destroy(): plain RAII, with
// `new` in create and `delete` in destroy.
class WordCount {
public:
    WordCount(const bm_host *host, size_t min_length, std::optional<size_t> max_words)
        : host_(host), min_length_(min_length), max_words_(max_words) {}

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
    std::optional<size_t> max_words() const { return max_words_; }
    // ABI 1.1's fields (emit_detailed, deadline_ns) are there when the host is 1.1 or later.
    bool host_has_1_1() const { return host_->abi_minor >= 1; }

    void log(int level, const std::string &message) const { host_->log(host_->ctx, level, message.data(), message.size()); }

private:
    const bm_host *host_;
    const size_t min_length_;
    const std::optional<size_t> max_words_;
    std::atomic<unsigned long long> total_{0};
};

std::string_view view(bm_str s) { return std::string_view(s.ptr, s.len); }

// The config is a JSON object such as {"minLength": 2, "maxWords": 1000}, read with nlohmann/json
// (Debian's nlohmann-json3-dev; header-only). Parsed without exceptions: a bad config is a
// message, not a throw.
bool read_config(std::string_view text, size_t &min_length, std::optional<size_t> &max_words, std::string &problem) {
    const auto config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
        problem = "config: expected a JSON object such as {\"minLength\": 2}";
        return false;
    }
    if (config.contains("minLength")) {
        const auto &value = config["minLength"];
        if (!value.is_number_unsigned() || value.get<size_t>() < 1 || value.get<size_t>() > 100) {
            problem = "config: \"minLength\" must be a whole number from 1 to 100";
            return false;
        }
        min_length = value.get<size_t>();
    }
    if (config.contains("maxWords")) {
        const auto &value = config["maxWords"];
        if (!value.is_number_unsigned() || value.get<size_t>() < 1) {
            problem = "config: \"maxWords\" must be a whole number of at least 1";
            return false;
        }
        max_words = value.get<size_t>();
    }
    return true;
}

void copy_message(const std::string &message, char *error, size_t error_cap) {
    if (error_cap > 0) std::snprintf(error, error_cap, "%s", message.c_str());
}

unsigned long long monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<unsigned long long>(now.tv_sec) * 1000000000ULL + static_cast<unsigned long long>(now.tv_nsec);
}

// emit_detailed (ABI 1.1): a failure with a reason token (errorReason "plugin:<token>") and, for
// BM_RETRY, the least time before it is tried again.
int emit_with_reason(const bm_emitter *out, size_t index, int status, const std::string &message, std::string_view reason,
                     uint64_t retry_after_ms = 0) {
    return out->emit_detailed(out->ctx, index, status, message.data(), message.size(), bm_str{reason.data(), reason.size()},
                              retry_after_ms);
}

// No exception may cross into the host (it is C): each entry point catches everything.
void *wordcount_create(const bm_host *host, bm_str key, bm_str config, char *error, size_t error_cap) noexcept {
    try {
        size_t min_length = 1;
        std::optional<size_t> max_words;
        std::string problem;
        if (!read_config(view(config), min_length, max_words, problem)) {
            copy_message(problem, error, error_cap);
            return nullptr;  // refuses the key: the host says why and does not start
        }
        auto *instance = new WordCount(host, min_length, max_words);
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
        const bool detailed = counter->host_has_1_1();
        std::string result;
        for (size_t i = 0; i < batch->count; i++) {
            // The host stopped waiting for this call (its timeout): it has answered these jobs and
            // retries them, so do no more work; ask for the retry not before 100 ms.
            if (detailed && batch->deadline_ns != 0 && monotonic_ns() > batch->deadline_ns) {
                emit_with_reason(out, i, BM_RETRY, "past the call's deadline", "deadline", 100);
                continue;
            }
            const size_t words = counter->count(view(batch->jobs[i].payload));
            if (detailed && counter->max_words() && words > *counter->max_words()) {
                emit_with_reason(out, i, BM_FAILED, std::to_string(words) + " words, more than maxWords " + std::to_string(*counter->max_words()),
                                 "too_many_words");
                continue;
            }
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
