//! libtorch's operator profiler around benchmark steps (`unmix bench step --profile FILE`): a
//! Chrome trace of every ATen operator and autograd node, with the step's phases as named ranges;
//! `bench/profile_summary.py` groups its time by kind. The shim is `csrc/profile.cpp`.

use anyhow::{bail, Result};
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;

extern "C" {
    fn unmix_profile_start(err: *mut c_char, len: c_int) -> c_int;
    fn unmix_profile_stop(path: *const c_char, err: *mut c_char, len: c_int) -> c_int;
    fn unmix_profile_range_begin(name: *const c_char, err: *mut c_char, len: c_int) -> *mut c_void;
    fn unmix_profile_range_end(range: *mut c_void);
}

/// The profiler, recording from [`Profiler::start`] until [`Profiler::save`].
pub struct Profiler(());

impl Profiler {
    pub fn start() -> Result<Profiler> {
        let mut err = crate::ffi::error_buffer();
        // SAFETY: the shim writes at most `err.len()` bytes into `err`.
        if unsafe { unmix_profile_start(err.as_mut_ptr(), err.len() as c_int) } != 0 {
            bail!("cannot start libtorch's profiler: {}", crate::ffi::message(&err));
        }
        Ok(Profiler(()))
    }

    /// Stops recording and writes the trace to `path`.
    pub fn save(self, path: &Path) -> Result<()> {
        let c = CString::new(path.to_string_lossy().as_bytes())?;
        let mut err = crate::ffi::error_buffer();
        // SAFETY: `c` is a live NUL-terminated string; the shim writes at most `err.len()` bytes.
        if unsafe { unmix_profile_stop(c.as_ptr(), err.as_mut_ptr(), err.len() as c_int) } != 0 {
            bail!("cannot write the profile to {}: {}", path.display(), crate::ffi::message(&err));
        }
        Ok(())
    }
}

/// A named range of the trace while alive (libtorch keeps a view of the name: it lives here).
pub struct Range(*mut c_void, #[allow(dead_code)] CString);

impl Range {
    pub fn new(name: &str) -> Result<Range> {
        let c = CString::new(name)?;
        let mut err = crate::ffi::error_buffer();
        // SAFETY: `c` outlives the range (it is kept in it); the shim writes at most `err.len()`
        // bytes into `err`.
        let p = unsafe { unmix_profile_range_begin(c.as_ptr(), err.as_mut_ptr(), err.len() as c_int) };
        if p.is_null() {
            bail!("cannot open a profiler range: {}", crate::ffi::message(&err));
        }
        Ok(Range(p, c))
    }
}

impl Drop for Range {
    fn drop(&mut self) {
        // SAFETY: the pointer came from unmix_profile_range_begin and is ended once.
        unsafe { unmix_profile_range_end(self.0) }
    }
}
