//! wordcount: a Batchman plugin in Rust, the Rust kit's starting point.
//!
//! Answers each job with `{"words":N,"total":T}`: N counts the words of the job's payload (runs
//! of ASCII letters and digits at least `minLength` long, from the key's config, default 1), T
//! the words this key's instance has counted so far. A job of more than `maxWords` words (if set)
//! fails with the reason `too_many_words`. Build and check (see README.md):
//!
//! ```sh
//! cargo build --release --offline
//! batchman plugin-test target/release/libwordcount.so --config '{"minLength": 2}'
//! ```
mod abi;

use abi::*;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// One instance per key, boxed in `create` and dropped in `destroy`.
struct WordCount {
    min_length: usize,
    /// None: no limit.
    max_words: Option<u64>,
    /// The host's ABI is 1.1 or later: `emit_detailed` and `deadline_ns` are there.
    detailed: bool,
    /// BM_FLAG_CONCURRENT is set, so several threads may count at once: the total is atomic and
    /// nothing else changes after `create`.
    total: AtomicU64,
}

impl WordCount {
    fn count(&self, text: &[u8]) -> u64 {
        let words = text
            .split(|byte| !byte.is_ascii_alphanumeric())
            .filter(|word| !word.is_empty() && word.len() >= self.min_length)
            .count() as u64;
        self.total.fetch_add(words, Ordering::Relaxed);
        words
    }
}

/// The key's config, a JSON object such as `{"minLength": 2, "maxWords": 1000}`, read with
/// serde_json: `(min_length, max_words)`.
fn read_config(config: &[u8]) -> Result<(usize, Option<u64>), String> {
    let value: serde_json::Value =
        serde_json::from_slice(config).map_err(|_| "config: expected a JSON object such as {\"minLength\": 2}".to_string())?;
    let object = value.as_object().ok_or("config: expected a JSON object such as {\"minLength\": 2}")?;
    let min_length = match object.get("minLength") {
        None => 1,
        Some(number) => match number.as_u64() {
            Some(value) if (1..=100).contains(&value) => value as usize,
            _ => return Err("config: \"minLength\" must be a whole number from 1 to 100".into()),
        },
    };
    let max_words = match object.get("maxWords") {
        None => None,
        Some(number) => match number.as_u64() {
            Some(value) if value >= 1 => Some(value),
            _ => return Err("config: \"maxWords\" must be a whole number of at least 1".into()),
        },
    };
    Ok((min_length, max_words))
}

/// `emit_detailed` (ABI 1.1): a failure naming its reason (errorReason `plugin:<reason>`) and,
/// for BM_RETRY, the least time before it is tried again.
unsafe fn emit_with_reason(out: &bm_emitter, index: usize, status: c_int, message: &str, reason: &str, retry_after_ms: u64) {
    let token = bm_str { ptr: reason.as_ptr() as *const c_char, len: reason.len() };
    (out.emit_detailed)(out.ctx, index, status, message.as_ptr() as *const c_char, message.len(), token, retry_after_ms);
}

/// CLOCK_MONOTONIC in nanoseconds, the clock of `deadline_ns` (std's Instant reads the same
/// clock on Linux but does not show its value).
fn monotonic_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanoseconds: i64,
    }
    extern "C" {
        fn clock_gettime(clock: c_int, time: *mut Timespec) -> c_int;
    }
    const CLOCK_MONOTONIC: c_int = 1;
    let mut now = Timespec { seconds: 0, nanoseconds: 0 };
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut now) };
    now.seconds as u64 * 1_000_000_000 + now.nanoseconds as u64
}

fn log(host: &bm_host, level: c_int, message: &str) {
    unsafe { (host.log)(host.ctx, level, message.as_ptr() as *const c_char, message.len()) }
}

// Every entry point catches panics: none may unwind into the host.

unsafe extern "C" fn create(host: *const bm_host, key: bm_str, config: bm_str, error: *mut c_char, error_cap: usize) -> *mut c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        let (min_length, max_words) = read_config(config.bytes())?;
        let key = String::from_utf8_lossy(key.bytes());
        log(&*host, BM_LOG_INFO, &format!("wordcount ready for key \"{key}\" (minLength {min_length})"));
        let detailed = (*host).abi_minor >= 1;
        Ok::<_, String>(Box::into_raw(Box::new(WordCount { min_length, max_words, detailed, total: AtomicU64::new(0) })) as *mut c_void)
    }));
    match made {
        Ok(Ok(instance)) => instance,
        Ok(Err(message)) => {
            write_error(error, error_cap, &message);
            std::ptr::null_mut() // refuses the key: the host says why and does not start
        }
        Err(_) => {
            write_error(error, error_cap, "create panicked");
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn process_batch(instance: *mut c_void, batch: *const bm_batch, out: *const bm_emitter, error: *mut c_char, error_cap: usize) -> c_int {
    let done = catch_unwind(AssertUnwindSafe(|| {
        let counter = &*(instance as *const WordCount);
        let batch = &*batch;
        let out = &*out;
        let jobs = if batch.count == 0 { &[][..] } else { std::slice::from_raw_parts(batch.jobs, batch.count) };
        let mut result = String::new();
        for (index, job) in jobs.iter().enumerate() {
            // The host stopped waiting for this call (its timeout): it has answered these jobs and
            // retries them, so do no more work; ask for the retry not before 100 ms.
            if counter.detailed && batch.deadline_ns != 0 && monotonic_ns() > batch.deadline_ns {
                emit_with_reason(out, index, BM_RETRY, "past the call's deadline", "deadline", 100);
                continue;
            }
            let words = counter.count(job.payload.bytes());
            if let (true, Some(max_words)) = (counter.detailed, counter.max_words) {
                if words > max_words {
                    emit_with_reason(out, index, BM_FAILED, &format!("{words} words, more than maxWords {max_words}"), "too_many_words", 0);
                    continue;
                }
            }
            result.clear();
            result.push_str(&format!("{{\"words\":{words},\"total\":{}}}", counter.total.load(Ordering::Relaxed)));
            // The host copies the bytes before emit returns.
            (out.emit)(out.ctx, index, BM_OK, result.as_ptr() as *const c_char, result.len());
        }
    }));
    match done {
        Ok(()) => 0,
        Err(_) => {
            // Jobs not emitted yet are retried.
            write_error(error, error_cap, "wordcount panicked");
            BM_RETRY
        }
    }
}

unsafe extern "C" fn destroy(instance: *mut c_void) {
    drop(Box::from_raw(instance as *mut WordCount));
}

static DESCRIPTOR: bm_plugin = bm_plugin {
    magic: BM_PLUGIN_MAGIC,
    struct_size: std::mem::size_of::<bm_plugin>() as u32,
    abi_major: BM_ABI_MAJOR,
    abi_minor: BM_ABI_MINOR,
    flags: BM_FLAG_CONCURRENT,
    name: c"wordcount".as_ptr(),
    version: c"1.0.0".as_ptr(),
    create,
    process_batch,
    destroy,
};

/// The one symbol the host looks up.
#[no_mangle]
pub extern "C" fn batchman_plugin_v1() -> *const bm_plugin {
    &DESCRIPTOR
}
