//! Multi-process data parallelism on c10d/Gloo over loopback, with real data (the Fashion-MNIST
//! fixture): 2 processes equal 1 process on the same global batch, and a dead rank stops the
//! others with an error instead of a hang.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_unmix")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// MoCo v1 of the fmnist protocol, small: per-process batch `batch`, split BN `splits`.
fn args(out: &Path, batch: usize, splits: usize, extra: &[&str]) -> Vec<String> {
    args_for("moco", out, batch, splits, extra)
}

fn args_for(method: &str, out: &Path, batch: usize, splits: usize, extra: &[&str]) -> Vec<String> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/unmix-data/tests/fixtures/fashion-mnist");
    let mut a: Vec<String> = vec![
        "pretrain".into(),
        "--config".into(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/fmnist-{method}-unmix.toml")).display().to_string(),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    let set = [
        format!("data.root=\"{}\"", fixture.display()),
        // Float64 throughout: one process and two sum in different orders, and the comparison
        // must tell semantics from rounding on any CPU (see TOLERANCE).
        "train.precision=\"fp64\"".into(),
        "data.limit=192".into(),
        "train.epochs=1".into(),
        if method == "moco" { "train.lr=0.01".into() } else { "train.warmup_epochs=0".into() },
        "train.log_every=1".into(),
        "unmix.enabled=false".into(),
        "eval.online_probe=false".into(),
        "eval.knn_k=20".into(),
        "threads=1".into(),
        "data.workers=1".into(),
        "model.widths=[8, 8, 16, 16]".into(),
        "model.conv_init=\"torchvision\"".into(),
        "model.memory_format=\"contiguous\"".into(),
        format!("train.batch_size={batch}"),
        format!("model.bn_splits={splits}"),
    ];
    let queue = (method == "moco").then_some("method.queue=256");
    for s in set.iter().map(String::as_str).chain(queue).chain(extra.iter().copied()) {
        a.push("--set".into());
        a.push(s.to_string());
    }
    a
}

#[allow(clippy::too_many_arguments)]
fn launch(
    out: &Path,
    rank: usize,
    world: usize,
    port: u16,
    batch: usize,
    splits: usize,
    extra: &[&str],
    timeout_s: u64,
) -> std::process::Child {
    launch_for("moco", out, rank, world, port, batch, splits, extra, timeout_s)
}

#[allow(clippy::too_many_arguments)]
fn launch_for(
    method: &str,
    out: &Path,
    rank: usize,
    world: usize,
    port: u16,
    batch: usize,
    splits: usize,
    extra: &[&str],
    timeout_s: u64,
) -> std::process::Child {
    launch_env(method, out, rank, world, port, batch, splits, extra, timeout_s, &[])
}

#[allow(clippy::too_many_arguments)]
fn launch_env(
    method: &str,
    out: &Path,
    rank: usize,
    world: usize,
    port: u16,
    batch: usize,
    splits: usize,
    extra: &[&str],
    timeout_s: u64,
    env: &[(&str, &str)],
) -> std::process::Child {
    Command::new(bin())
        .envs(env.iter().copied())
        .args(args_for(method, out, batch, splits, extra))
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("UNMIX_DIST_TIMEOUT", timeout_s.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start unmix")
}

/// The relative difference allowed between one process and two after three float64 steps.
/// Measured in fp32 on two CPUs (AMX and AVX2-only), the two runs of this test drifted by up to
/// 1.9e-4 on a BN bias of scale 0.01, i.e. 1.9e-2 relative: the network amplified fp32's rounding
/// (eps 1.2e-7) about 1.6e5-fold in three steps. The same amplification of float64's eps
/// (2.2e-16) is 3.5e-11; 1e-9 leaves a 30-fold margin and is still 1e6 times below the smallest
/// semantic difference these tests guard against (a wrong group, gather or reduction moves the
/// weights by 1e-3 or more).
const TOLERANCE: f64 = 1e-9;

/// Environment variables that make libtorch take the AVX2 kernels (ATen) and oneDNN stay at
/// AVX2 on a machine that has more: what an AVX2-only CPU runs.
const AVX2_ONLY: [(&str, &str); 2] = [("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2")];

fn tensors(dir: &Path) -> Vec<(String, tch::Tensor)> {
    unmix::checkpoint::load(&dir.join(unmix::checkpoint::RUN_CHECKPOINT)).unwrap().0
}

/// MoCo with split BN: one process with batch 64 in 8 groups, and two processes with 32 each in
/// 4 groups (process r holds the samples of groups r, r + 2, ...; gradients averaged; MoCo's keys
/// gathered, shuffled across both processes and enqueued from both), under `env`.
fn moco_one_vs_two(env: &[(&str, &str)]) {
    let tmp = tempfile::tempdir().unwrap();
    let single: PathBuf = tmp.path().join("single");
    let multi: PathBuf = tmp.path().join("multi");
    let s = Command::new(bin()).envs(env.iter().copied()).args(args(&single, 64, 8, &[])).output().unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let port = free_port();
    let ranks: Vec<_> = (0..2).map(|r| launch_env("moco", &multi, r, 2, port, 32, 4, &[], 120, env)).collect();
    for (r, c) in ranks.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "rank {r}: {}", String::from_utf8_lossy(&o.stderr));
        if r == 0 {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.contains("effective batch 64"), "{text}");
        }
    }
    let (a, b) = (tensors(&single), tensors(&multi));
    // Trainable weights of both encoders, and the queue (running BN statistics are per process
    // and are not compared).
    let keep = |name: &str| {
        (name.starts_with("q.") || name.starts_with("k.") || name == "moco.queue") && !name.contains("running")
    };
    assert_close("moco", &a, &b, keep);
    // The steps were taken.
    let steps = std::fs::read_to_string(multi.join("steps.jsonl")).unwrap();
    assert_eq!(steps.lines().count(), 3);
}

#[test]
fn two_processes_equal_one_process_on_the_global_batch() {
    moco_one_vs_two(&[]);
}

#[test]
fn two_processes_equal_one_process_on_avx2_kernels_too() {
    moco_one_vs_two(&AVX2_ONLY);
}

/// A checkpoint's named tensors.
type State = Vec<(String, tch::Tensor)>;

/// Runs `method` as one process with batch 64 and as two with 32 each; returns the checkpoints.
fn one_vs_two(method: &str, extra: &[&str]) -> (State, State) {
    let tmp = tempfile::tempdir().unwrap();
    let (single, multi) = (tmp.path().join("single"), tmp.path().join("multi"));
    let s = Command::new(bin()).args(args_for(method, &single, 64, 8, extra)).output().unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let port = free_port();
    let ranks: Vec<_> = (0..2).map(|r| launch_for(method, &multi, r, 2, port, 32, 4, extra, 120)).collect();
    for (r, c) in ranks.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{method} rank {r}: {}", String::from_utf8_lossy(&o.stderr));
    }
    (tensors(&single), tensors(&multi))
}

/// Every float64 tensor `keep` selects agrees within [`TOLERANCE`] of its scale.
fn assert_close(method: &str, a: &[(String, tch::Tensor)], b: &[(String, tch::Tensor)], keep: impl Fn(&str) -> bool) {
    let mut compared = 0;
    for (name, t) in a {
        if !keep(name) || name.contains("num_batches") {
            continue;
        }
        assert_eq!(t.kind(), tch::Kind::Double, "{method} {name}: the run was not in float64");
        let u = &b.iter().find(|(k, _)| k == name).unwrap().1;
        let diff = (t - u).abs().max().double_value(&[]);
        let scale = t.abs().max().double_value(&[]).max(0.01);
        assert!(diff / scale < TOLERANCE, "{method} {name}: differs by {diff} (scale {scale})");
        compared += 1;
    }
    assert!(compared > 40, "{method}: {compared} tensors compared");
}

fn trainable_query(name: &str) -> bool {
    name.starts_with("q.") && !name.contains("running")
}

#[test]
fn simclr_and_swav_gather_across_processes_like_one_process() {
    // Heads without batch norm (head BN is per process, like per-GPU BN); the backbone's split BN
    // in one process matches the processes' own BN. SimCLR's negatives come from both processes,
    // SwAV's Sinkhorn runs over the global batch.
    // Plain SGD: Adam and LARS rescale each tensor's update, which turns rounding noise in a
    // near-zero gradient into a larger difference.
    for method in ["simclr", "swav"] {
        let (a, b) =
            one_vs_two(method, &["method.mlp_bn=false", "train.optimizer=\"sgd\"", "train.lr=0.01", "train.min_lr=0"]);
        assert_close(method, &a, &b, trainable_query);
    }
    // MoCo v3-style in-batch keys: the negatives are the keys of the whole global batch.
    let (a, b) = one_vs_two("moco", &["method.queue=0", "method.symmetric=true"]);
    assert_close("moco-v3", &a, &b, trainable_query);
}

#[test]
fn a_dead_rank_stops_the_others_with_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let long = ["train.epochs=200"];
    let mut r0 = launch(tmp.path(), 0, 2, port, 32, 4, &long, 20);
    let mut r1 = launch(tmp.path(), 1, 2, port, 32, 4, &long, 20);
    // Let both join and train, then kill rank 1.
    std::thread::sleep(Duration::from_secs(4));
    r1.kill().unwrap();
    let _ = r1.wait();
    let t0 = Instant::now();
    loop {
        if let Some(status) = r0.try_wait().unwrap() {
            assert!(!status.success(), "rank 0 must fail when rank 1 dies");
            break;
        }
        // Rank 0's own timeout is 20 s; the rest is room for a loaded CI machine (a hang is forever).
        assert!(t0.elapsed() < Duration::from_secs(300), "rank 0 hangs after rank 1 died");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut err = String::new();
    use std::io::Read;
    r0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("rank 0") && err.contains("2 processes"), "unclear error: {err}");
    // An error returned up to main (the gathers inside the methods' losses included), not a panic.
    assert!(!err.contains("panicked"), "a failed gather must be an error, not a panic: {err}");
}
