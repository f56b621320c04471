//! Fault injection for the tests of a run's records: `UNMIX_FAULT=POINT:N` kills the process
//! (SIGKILL, as `kill -9` or a power cut would) right after the N-th write at the named point
//! (1-based). The write points of a run, in the order an epoch's end reaches them, are
//! [`POINTS`]; a test kills at each in turn and checks that `--resume` repairs every record.
//! Without the variable [`after`] does nothing.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Every write point of a run, in the order a run's end reaches them: the run's config, a step
/// line (steps.jsonl and its TensorBoard scalars), the checkpoint, an epoch's TensorBoard
/// scalars, its metrics.jsonl line, metrics.csv, summary.json and report.md.
pub const POINTS: [&str; 9] =
    ["config", "steps", "step-events", "checkpoint", "events", "metrics", "csv", "summary", "report"];

fn target() -> &'static Option<(String, usize)> {
    static TARGET: OnceLock<Option<(String, usize)>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let v = std::env::var("UNMIX_FAULT").ok()?;
        let (point, n) = v.split_once(':')?;
        assert!(POINTS.contains(&point), "UNMIX_FAULT={v}: no write point {point} (one of {POINTS:?})");
        Some((point.to_string(), n.parse().unwrap_or_else(|_| panic!("UNMIX_FAULT={v}: {n} is not a count"))))
    })
}

/// Marks a finished write at `point`; kills the process there when `UNMIX_FAULT` names it.
pub fn after(point: &str) {
    debug_assert!(POINTS.contains(&point), "write point {point} is not listed in fault::POINTS");
    let Some((want, n)) = target() else { return };
    if want != point {
        return;
    }
    static SEEN: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let count = seen.get_or_insert_with(HashMap::new).entry(point.to_string()).or_insert(0);
    *count += 1;
    if *count == *n {
        // SAFETY: raise() with a valid signal number.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
