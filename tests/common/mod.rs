//! The command-line helpers of the reliability tests: the fmnist MoCo protocol shrunk to a few
//! seconds on the fixture images, and what a refused or successful command must look like.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_unmix")
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture() -> PathBuf {
    root().join("crates/unmix-data/tests/fixtures/fashion-mnist")
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).current_dir(root()).output().unwrap()
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

/// The fmnist MoCo protocol shrunk to a few seconds: 256 fixture images, batch 32, 2 epochs, one
/// libtorch thread (the suites run several of these side by side).
pub fn tiny(extra: &[&str]) -> Vec<String> {
    let root = format!("data.root=\"{}\"", fixture().display());
    let mut with_root = vec![root.as_str()];
    with_root.extend(extra);
    tiny_without_root(&with_root)
}

/// [`tiny`] with data.root left to the config or `--data`.
pub fn tiny_without_root(extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> =
        ["pretrain", "--config", "configs/fmnist-moco-unmix.toml", "--quiet"].iter().map(|s| s.to_string()).collect();
    let sets: [String; 8] = [
        "threads=1".into(),
        "data.limit=256".into(),
        "model.widths=[4, 4, 4, 4]".into(),
        "train.batch_size=32".into(),
        "method.queue=128".into(),
        "train.epochs=2".into(),
        "train.log_every=1".into(),
        "eval.knn_k=20".into(),
    ];
    for s in sets.iter().map(String::as_str).chain(extra.iter().copied()) {
        a.push("--set".into());
        a.push(s.to_string());
    }
    a
}

pub fn pretrain(out: &Path, extra: &[&str], flags: &[&str]) -> Output {
    let mut a = tiny(extra);
    a.extend(["--out".to_string(), out.display().to_string()]);
    a.extend(flags.iter().map(|s| s.to_string()));
    Command::new(bin()).args(&a).current_dir(root()).output().unwrap()
}

pub fn resume(out: &Path, extra: &[&str]) -> Output {
    let mut a: Vec<String> =
        vec!["pretrain".into(), "--quiet".into(), "--resume".into(), "--out".into(), out.display().to_string()];
    for s in extra {
        a.push("--set".into());
        a.push(s.to_string());
    }
    Command::new(bin()).args(&a).current_dir(root()).output().unwrap()
}

pub fn ok(o: &Output) {
    let (out, err) = text(o);
    assert!(o.status.success(), "exit {:?}\nstdout: {out}\nstderr: {err}", o.status.code());
}

/// Exit status 1 with a message, no panic.
pub fn refused(o: &Output) -> String {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    assert!(!err.contains("panicked") && err.starts_with("error: "), "{err}");
    err
}

pub fn ckpt(dir: &Path) -> PathBuf {
    dir.join("checkpoints/last.safetensors")
}

pub fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// [`pretrain`] with environment variables set (e.g. the fault hook `UNMIX_FAULT`).
pub fn pretrain_env(out: &Path, extra: &[&str], flags: &[&str], env: &[(&str, &str)]) -> Output {
    let mut a = tiny(extra);
    a.extend(["--out".to_string(), out.display().to_string()]);
    a.extend(flags.iter().map(|s| s.to_string()));
    Command::new(bin()).args(&a).envs(env.iter().copied()).current_dir(root()).output().unwrap()
}

/// A tiny run in the background (stdout and stderr kept for `wait_with_output`).
pub fn spawn_pretrain(out: &Path, extra: &[&str]) -> std::process::Child {
    let mut a = tiny(extra);
    a.extend(["--out".to_string(), out.display().to_string()]);
    Command::new(bin()).args(&a).current_dir(root()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits until `ready` holds while `child` runs. No short deadline: on a loaded machine (CI runs
/// the suites' tests side by side) a tiny run's first epoch has taken over two minutes. A child
/// that exits first fails the test with its stderr; a hang fails after `HANG_GUARD`.
pub fn wait_for(child: &mut std::process::Child, what: &str, ready: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("the run exited ({status}) before {what}; stderr: {err}");
        }
        assert!(t0.elapsed() < HANG_GUARD, "waited {:?} for {what}", t0.elapsed());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How long a test waits for a child before calling it hung.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// The number of lines of a file (0 when it does not exist).
pub fn line_count(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|s| s.lines().count()).unwrap_or(0)
}

/// Every scalar of a run's TensorBoard files as TensorBoard's own reader sees them:
/// `{tag: [[step, value], ...]}`.
pub fn tensorboard_scalars(run: &Path) -> serde_json::Value {
    let script = format!(
        r#"
import json
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator({tb:?}); acc.Reload()
print(json.dumps({{t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}}))
"#,
        tb = run.join("tensorboard").display().to_string()
    );
    let o = Command::new(root().join(".venv/bin/python"))
        .args(["-c", &script])
        .output()
        .expect("the project's .venv has python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}
