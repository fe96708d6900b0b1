// wordcount: a Batchman plugin in Go, the Go kit's starting point.
//
// Answers each job with {"words":N,"total":T}: N counts the words of the job's payload (runs of
// ASCII letters and digits at least minLength long, from the key's config, default 1), T the
// words this key's instance has counted so far. A job of more than maxWords words (if set) fails
// with the reason "too_many_words". Build and check (see README.md):
//
//	go build -buildmode=c-shared -o libwordcount.so .
//	batchman plugin-test ./libwordcount.so --config '{"minLength": 2}'
package main

/*
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "batchman_plugin.h"

// cgo cannot call C function pointers: these call the host's for Go.
static inline int call_emit(const bm_emitter *out, size_t index, int status, const char *data, size_t len) {
	return out->emit(out->ctx, index, status, data, len);
}

static inline void call_log(const bm_host *host, int level, const char *message, size_t len) {
	host->log(host->ctx, level, message, len);
}

// emit_detailed (ABI 1.1): a failure with a reason token and, for BM_RETRY, a retry-after.
static inline int call_emit_detailed(const bm_emitter *out, size_t index, int status, const char *data, size_t len,
                                     const char *reason, size_t reason_len, uint64_t retry_after_ms) {
	bm_str token = { reason, reason_len };
	return out->emit_detailed(out->ctx, index, status, data, len, token, retry_after_ms);
}

// The host's ABI minor version: fields of 1.1 (emit_detailed, deadline_ns) are there from 1.
static inline int host_minor(const bm_host *host) { return host->abi_minor; }

// CLOCK_MONOTONIC in nanoseconds: the clock of deadline_ns.
static inline uint64_t monotonic_ns(void) {
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime/cgo"
	"strconv"
	"sync/atomic"
	"unsafe"
)

// One instance per key. BM_FLAG_CONCURRENT is set (see descriptor.c), so several host threads
// may call it at once: the total is atomic and nothing else changes after create.
type wordCount struct {
	minLength int
	maxWords  uint64 // 0: no limit
	// The host's ABI is 1.1 or later: emit_detailed and deadline_ns are there.
	detailed bool
	total    atomic.Uint64
}

func (counter *wordCount) count(text []byte) uint64 {
	var words uint64
	run := 0
	for _, b := range text {
		if ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9') {
			run++
			continue
		}
		if run > 0 && run >= counter.minLength {
			words++
		}
		run = 0
	}
	if run > 0 && run >= counter.minLength {
		words++
	}
	counter.total.Add(words)
	return words
}

// bytes borrows a bm_str's bytes for the duration of the call that received them.
func bytes(s C.bm_str) []byte {
	if s.len == 0 || s.ptr == nil {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(s.ptr)), int(s.len))
}

func writeError(buffer *C.char, capacity C.size_t, message string) {
	if buffer == nil || capacity == 0 {
		return
	}
	out := unsafe.Slice((*byte)(unsafe.Pointer(buffer)), int(capacity))
	n := copy(out[:len(out)-1], message)
	out[n] = 0
}

// A Go value may not be kept in C memory, so the instance C sees is a cgo.Handle, stored in
// memory C owns.
func instanceOf(pointer unsafe.Pointer) *wordCount {
	return cgo.Handle(*(*C.uintptr_t)(pointer)).Value().(*wordCount)
}

//export wordcountCreate
func wordcountCreate(host *C.bm_host, key C.bm_str, config C.bm_str, errorBuffer *C.char, errorCap C.size_t) (instance unsafe.Pointer) {
	defer func() {
		if recovered := recover(); recovered != nil {
			writeError(errorBuffer, errorCap, fmt.Sprintf("create panicked: %v", recovered))
			instance = nil
		}
	}()
	var settings struct {
		MinLength *int `json:"minLength"`
		MaxWords  *int `json:"maxWords"`
	}
	if err := json.Unmarshal(bytes(config), &settings); err != nil {
		writeError(errorBuffer, errorCap, "config: "+err.Error())
		return nil // refuses the key: the host says why and does not start
	}
	minLength := 1
	if settings.MinLength != nil {
		if *settings.MinLength < 1 || *settings.MinLength > 100 {
			writeError(errorBuffer, errorCap, `config: "minLength" must be a whole number from 1 to 100`)
			return nil
		}
		minLength = *settings.MinLength
	}
	var maxWords uint64
	if settings.MaxWords != nil {
		if *settings.MaxWords < 1 {
			writeError(errorBuffer, errorCap, `config: "maxWords" must be a whole number of at least 1`)
			return nil
		}
		maxWords = uint64(*settings.MaxWords)
	}
	message := fmt.Sprintf("wordcount ready for key %q (minLength %d)", string(bytes(key)), minLength)
	text := C.CString(message)
	C.call_log(host, C.BM_LOG_INFO, text, C.size_t(len(message)))
	C.free(unsafe.Pointer(text))
	handle := C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0))))
	*(*C.uintptr_t)(handle) = C.uintptr_t(cgo.NewHandle(&wordCount{minLength: minLength, maxWords: maxWords, detailed: C.host_minor(host) >= 1}))
	return handle
}

//export wordcountProcessBatch
func wordcountProcessBatch(instance unsafe.Pointer, batch *C.bm_batch, out *C.bm_emitter, errorBuffer *C.char, errorCap C.size_t) (status C.int) {
	defer func() {
		if recovered := recover(); recovered != nil {
			// Jobs not emitted yet are retried.
			writeError(errorBuffer, errorCap, fmt.Sprintf("wordcount panicked: %v", recovered))
			status = C.BM_RETRY
		}
	}()
	counter := instanceOf(instance)
	if batch.count == 0 {
		return 0
	}
	jobs := unsafe.Slice(batch.jobs, int(batch.count))
	result := make([]byte, 0, 64)
	for index := range jobs {
		// The host stopped waiting for this call (its timeout): it has answered these jobs and
		// retries them, so do no more work; ask for the retry not before 100 ms.
		if counter.detailed && batch.deadline_ns != 0 && uint64(C.monotonic_ns()) > uint64(batch.deadline_ns) {
			emitWithReason(out, index, C.BM_RETRY, "past the call's deadline", "deadline", 100)
			continue
		}
		words := counter.count(bytes(jobs[index].payload))
		if counter.detailed && counter.maxWords > 0 && words > counter.maxWords {
			emitWithReason(out, index, C.BM_FAILED, fmt.Sprintf("%d words, more than maxWords %d", words, counter.maxWords), "too_many_words", 0)
			continue
		}
		result = append(result[:0], `{"words":`...)
		result = strconv.AppendUint(result, words, 10)
		result = append(result, `,"total":`...)
		result = strconv.AppendUint(result, counter.total.Load(), 10)
		result = append(result, '}')
		// The host copies the bytes before emit returns, so Go memory may be passed.
		C.call_emit(out, C.size_t(index), C.BM_OK, (*C.char)(unsafe.Pointer(&result[0])), C.size_t(len(result)))
	}
	return 0
}

// emitWithReason emits a failure naming its reason (errorReason "plugin:<reason>").
func emitWithReason(out *C.bm_emitter, index int, status C.int, message string, reason string, retryAfterMs uint64) {
	data, token := []byte(message), []byte(reason)
	C.call_emit_detailed(out, C.size_t(index), status, (*C.char)(unsafe.Pointer(&data[0])), C.size_t(len(data)),
		(*C.char)(unsafe.Pointer(&token[0])), C.size_t(len(token)), C.uint64_t(retryAfterMs))
}

//export wordcountDestroy
func wordcountDestroy(instance unsafe.Pointer) {
	cgo.Handle(*(*C.uintptr_t)(instance)).Delete()
	C.free(instance)
}

// A c-shared library needs a main package; main itself never runs.
func main() {}
