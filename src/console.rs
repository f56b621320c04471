//! The user's terminal: lines on stdout, and Ctrl-C / SIGTERM.
//!
//! A closed stdout (`unmix pretrain ... | head -1`) must not kill a training run: a failed write
//! is remembered instead of panicking (as `println!` does), and the training loop stops cleanly
//! at its next step with a checkpoint. SIGINT and SIGTERM do the same: the current step finishes,
//! a checkpoint is written and the way to resume is printed; a second signal ends the process at
//! once.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Writes one line to stdout; a failed write (a closed pipe) is remembered, not a panic.
pub fn line(s: impl Display) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{s}").and_then(|_| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
    }
}

/// `say!("...", args)`: [`line`] with `format!`'s syntax.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::line(format_args!($($arg)*))
    };
}

/// Whether a write to stdout has failed (its reader went away).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::SeqCst)
}

/// Installs the SIGINT / SIGTERM handler (once; later calls do nothing). The first signal asks
/// the running job to stop at its next step; the second ends the process (exit status 130).
pub fn catch_interrupts() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let installed = ctrlc::set_handler(|| {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
            // At once and without running exit handlers: libtorch's threads may be inside an
            // operation (a normal exit would tear its state down under them). Checkpoints are
            // written whole or not at all, so the last finished one stays intact.
            let msg = b"\nsecond interrupt: stopped at once; the last finished checkpoint is intact\n";
            // SAFETY: write(2) of a valid buffer to stderr and _exit(2) are async-signal-safe.
            unsafe {
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::_exit(130);
            }
        }
        eprintln!("\ninterrupt: finishing the current step and writing a checkpoint (interrupt again to stop at once)");
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will stop unmix without a checkpoint ({e})");
    }
}

/// A path as a shell reads it back: unchanged when it holds only safe characters, else in
/// single quotes (a quote inside as '\'').
pub fn quote(path: &std::path::Path) -> String {
    let s = path.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Why a job should stop before its end, if it should.
pub fn stop_requested() -> Option<StopReason> {
    if SIGNALS.load(Ordering::SeqCst) > 0 {
        Some(StopReason::Interrupted)
    } else if stdout_closed() {
        Some(StopReason::StdoutClosed)
    } else {
        None
    }
}

/// Why a run stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT or SIGTERM.
    Interrupted,
    /// Standard output was closed.
    StdoutClosed,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Interrupted => "interrupted",
            StopReason::StdoutClosed => "standard output was closed",
        })
    }
}
