//! wordcount: a Batchman plugin in Rust, the Rust kit's starting point.
//!
//! Answers each job with `{"words":N,"total":T}`: N counts the words of the job's payload (runs
//! of ASCII letters and digits at least `minLength` long, from the key's config, default 1), T
//! the words this key's instance has counted so far. Build and check (see README.md):
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

/// The config is a JSON object such as `{"minLength": 2}`. A real plugin would use a JSON crate;
/// this kit uses no crates from a registry, so it reads its one field by hand.
fn min_length(config: &[u8]) -> Result<usize, String> {
    let text = String::from_utf8_lossy(config);
    let Some(at) = text.find("\"minLength\"") else { return Ok(1) };
    let rest = text[at + "\"minLength\"".len()..].trim_start();
    let Some(rest) = rest.strip_prefix(':') else {
        return Err("config: expected \"minLength\": <a whole number from 1 to 100>".into());
    };
    let digits: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit()).take(4).collect();
    match digits.parse::<usize>() {
        Ok(value) if (1..=100).contains(&value) => Ok(value),
        _ => Err("config: \"minLength\" must be a whole number from 1 to 100".into()),
    }
}

fn log(host: &bm_host, level: c_int, message: &str) {
    unsafe { (host.log)(host.ctx, level, message.as_ptr() as *const c_char, message.len()) }
}

// Every entry point catches panics: none may unwind into the host.

unsafe extern "C" fn create(host: *const bm_host, key: bm_str, config: bm_str, error: *mut c_char, error_cap: usize) -> *mut c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        let min_length = min_length(config.bytes())?;
        let key = String::from_utf8_lossy(key.bytes());
        log(&*host, BM_LOG_INFO, &format!("wordcount ready for key \"{key}\" (minLength {min_length})"));
        Ok::<_, String>(Box::into_raw(Box::new(WordCount { min_length, total: AtomicU64::new(0) })) as *mut c_void)
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
            let words = counter.count(job.payload.bytes());
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
