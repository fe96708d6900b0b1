//! Hand-written bindings to `batchman_plugin.h` (ABI 1.0): the structs, constants and function
//! pointer types a plugin needs, `#[repr(C)]` so their layout is the header's.
#![allow(non_camel_case_types)]
// The whole header is bound, though this plugin uses only part of it.
#![allow(dead_code)]

use std::os::raw::{c_char, c_int, c_void};

pub const BM_PLUGIN_MAGIC: u32 = 0x424D_504C;
pub const BM_ABI_MAJOR: u16 = 1;
pub const BM_ABI_MINOR: u16 = 1;

pub const BM_OK: c_int = 0;
pub const BM_FAILED: c_int = 1;
pub const BM_RETRY: c_int = 2;

pub const BM_FLAG_CONCURRENT: u32 = 0x1;

pub const BM_LOG_DEBUG: c_int = 0;
pub const BM_LOG_INFO: c_int = 1;
pub const BM_LOG_WARNING: c_int = 2;
pub const BM_LOG_ERROR: c_int = 3;
pub const BM_JOB_REDELIVERED: u32 = 0x1;
pub const BM_HOST_DEBUG: u32 = 0x1;

/// A byte string, not NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct bm_str {
    pub ptr: *const c_char,
    pub len: usize,
}

impl bm_str {
    /// The bytes, borrowed for the duration of the call that received them.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or `len` must be 0).
    pub unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(self.ptr as *const u8, self.len)
        }
    }
}

#[repr(C)]
pub struct bm_host {
    pub struct_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub ctx: *mut c_void,
    pub log: unsafe extern "C" fn(ctx: *mut c_void, level: c_int, message: *const c_char, len: usize),
    // 1.1: present when struct_size covers them (see `has_pause`).
    pub manifest_dir: bm_str,
    pub flags: u32,
    pub pause: unsafe extern "C" fn(ctx: *mut c_void, key: bm_str, milliseconds: u64) -> c_int,
}

#[repr(C)]
pub struct bm_job {
    pub id: bm_str,
    pub payload: bm_str,
    pub attempt: u32,
    /// 1.1 (host abi_minor >= 1): BM_JOB_* values, in what was padding in 1.0.
    pub flags: u32,
}

#[repr(C)]
pub struct bm_batch {
    pub id: u64,
    pub key: bm_str,
    pub jobs: *const bm_job,
    pub count: usize,
    /// 1.1 (host abi_minor >= 1): CLOCK_MONOTONIC nanoseconds the host waits until; 0 for none.
    pub deadline_ns: u64,
}

#[repr(C)]
pub struct bm_emitter {
    pub ctx: *mut c_void,
    pub emit: unsafe extern "C" fn(ctx: *mut c_void, index: usize, status: c_int, data: *const c_char, len: usize) -> c_int,
    /// 1.1 (host abi_minor >= 1): emit with a reason token and a retry-after.
    pub emit_detailed: unsafe extern "C" fn(
        ctx: *mut c_void,
        index: usize,
        status: c_int,
        data: *const c_char,
        len: usize,
        reason: bm_str,
        retry_after_ms: u64,
    ) -> c_int,
}

pub type CreateFn = unsafe extern "C" fn(
    host: *const bm_host,
    key: bm_str,
    config_json: bm_str,
    error: *mut c_char,
    error_cap: usize,
) -> *mut c_void;
pub type ProcessBatchFn = unsafe extern "C" fn(
    instance: *mut c_void,
    batch: *const bm_batch,
    out: *const bm_emitter,
    error: *mut c_char,
    error_cap: usize,
) -> c_int;
pub type DestroyFn = unsafe extern "C" fn(instance: *mut c_void);

#[repr(C)]
pub struct bm_plugin {
    pub magic: u32,
    pub struct_size: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    pub flags: u32,
    pub name: *const c_char,
    pub version: *const c_char,
    pub create: CreateFn,
    pub process_batch: ProcessBatchFn,
    pub destroy: DestroyFn,
}

// The descriptor is a static the host only reads; its pointers are to static data.
unsafe impl Sync for bm_plugin {}

/// Copies `message` into the host's error buffer, NUL-terminated and cut to fit.
///
/// # Safety
/// `error` must point to `error_cap` writable bytes (or be NULL).
pub unsafe fn write_error(error: *mut c_char, error_cap: usize, message: &str) {
    if error.is_null() || error_cap == 0 {
        return;
    }
    let bytes = &message.as_bytes()[..message.len().min(error_cap - 1)];
    std::ptr::copy_nonoverlapping(bytes.as_ptr() as *const c_char, error, bytes.len());
    *error.add(bytes.len()) = 0;
}
