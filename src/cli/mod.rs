//! The binary's command line (not part of the library): the typed options of every command
//! ([`args`]) and one function per command, grouped by what it works on. Each function checks
//! its options and outputs before any long computation, calls the library and prints what the
//! user needs; it returns the process's exit status.

pub mod args;
pub mod bench;
pub mod eval;
mod outputs;
pub mod train;
