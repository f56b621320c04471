//! What the C++ shims in `csrc/` (c10d, split batch norm) share with their Rust callers: the
//! error buffer a failed call writes its message into (csrc/error.h).

use std::ffi::c_char;

/// Bytes of the error buffer handed to a shim.
pub const ERROR_LEN: usize = 1024;

/// A zeroed error buffer for one shim call.
pub fn error_buffer() -> Vec<c_char> {
    vec![0; ERROR_LEN]
}

/// The message a C ABI call wrote into `err`, its first lines (c10d's messages carry a C++
/// backtrace after the first line).
pub fn message(err: &[c_char]) -> String {
    let bytes: Vec<u8> = err.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    let s = String::from_utf8_lossy(&bytes).to_string();
    s.lines().take(3).collect::<Vec<_>>().join(" ")
}
