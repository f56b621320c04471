//! Every config key with values of its type and worse (NaN, inf, 0, negatives, huge, the wrong
//! type, unknown choices), one at a time on a tiny MoCo run through the command line: each run
//! must end with exit 0 and a finished run folder, or exit 1 with a message; never a panic, an
//! abort or a signal. The cases are drawn from a fixed stream, so a failure reproduces.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Keys of the fmnist MoCo config and values to try for them (TOML literals).
fn cases() -> Vec<(&'static str, Vec<&'static str>)> {
    let float = vec!["nan", "inf", "-inf", "0.0", "-1.0", "1e30", "1e-30", "0.5", "2.0"];
    let prob = vec!["nan", "-0.1", "0.0", "1.0", "1.5", "inf"];
    let count = vec!["-1", "0", "1", "2", "3", "7", "64", "1000000", "1099511627776", "1.5", "\"two\""];
    let flag = vec!["true", "false", "1", "\"yes\""];
    let pair = vec!["[nan, 1.0]", "[]", "[0.5, 0.2]", "[1e-30, 1e30]", "[-1.0, 2.0]", "[0.2, 1.0]", "[1.0]"];
    let choice = |valid: &[&'static str]| {
        let mut v: Vec<&'static str> = valid.to_vec();
        v.extend(["\"bogus\"", "0", "\"\""]);
        v
    };
    vec![
        ("seed", vec!["0", "-1", "1099511627776", "nan"]),
        ("device", choice(&["\"cpu\"", "\"cuda\"", "\"cuda:7\""])),
        ("threads", count.clone()),
        ("data.dataset", choice(&["\"cifar10\"", "\"mnist\"", "\"image-folder\""])),
        ("data.limit", count.clone()),
        ("data.workers", count.clone()),
        ("data.prefetch", count.clone()),
        ("data.mean", vec!["[nan]", "[inf]", "[1e30]", "[]", "[0.5, 0.5]", "[-3.0]"]),
        ("data.std", vec!["[nan]", "[0.0]", "[-1.0]", "[1e-30]", "[1e30]", "[0.5]"]),
        ("data.on_bad_image", choice(&["\"skip\"", "\"fail\""])),
        ("data.eval_resize", count.clone()),
        ("data.eval_crop", count.clone()),
        ("augment.view1.crop_size", count.clone()),
        ("augment.view1.crop_scale", pair.clone()),
        ("augment.view1.crop_ratio", pair.clone()),
        ("augment.view1.hflip_p", prob.clone()),
        (
            "augment.view1.jitter",
            vec![
                "[nan, 0.0, 0.0, 0.0]",
                "[1e30, 1e30, 0.0, 0.0]",
                "[0.4, 0.4, 0.4, 0.6]",
                "[0.1]",
                "[-1.0, 0.0, 0.0, 0.0]",
            ],
        ),
        ("augment.view1.jitter_p", prob.clone()),
        ("augment.view1.grayscale_p", prob.clone()),
        ("augment.view1.blur_p", prob.clone()),
        ("augment.view1.blur_sigma", pair.clone()),
        ("augment.view1.solarize_p", prob.clone()),
        ("augment.preset", choice(&["\"moco-v2\"", "\"byol\""])),
        ("model.arch", choice(&["\"resnet50\"", "\"resnet18-bottleneck\""])),
        (
            "model.widths",
            vec!["[1, 1, 1, 1]", "[0, 4, 4, 4]", "[-4, 4, 4, 4]", "[1000000, 4, 4, 4]", "[4, 4, 4]", "[4.5, 4, 4, 4]"],
        ),
        ("model.in_channels", count.clone()),
        ("model.cifar_stem", flag.clone()),
        ("model.bn_splits", count.clone()),
        ("model.conv_init", choice(&["\"torchvision\"", "\"pytorch\""])),
        ("model.memory_format", choice(&["\"contiguous\"", "\"channels-last\""])),
        ("model.input_padding", count.clone()),
        ("model.stem_init", choice(&["\"torchvision\""])),
        ("method.name", choice(&["\"simclr\"", "\"swav\""])),
        ("method.dim", count.clone()),
        ("method.mlp_hidden", count.clone()),
        ("method.mlp_layers", count.clone()),
        ("method.queue", count.clone()),
        ("method.momentum", prob.clone()),
        ("method.temperature", float.clone()),
        ("method.symmetric", flag.clone()),
        ("method.predictor_hidden", count.clone()),
        ("unmix.enabled", flag.clone()),
        ("unmix.prob", prob.clone()),
        ("unmix.alpha", float.clone()),
        ("unmix.target", choice(&["\"view1\"", "\"view2\""])),
        ("unmix.groups", count.clone()),
        ("train.epochs", vec!["-1", "0", "1", "2", "1.5"]),
        ("train.batch_size", count.clone()),
        ("train.optimizer", choice(&["\"lars\"", "\"adam\"", "\"adamw\""])),
        ("train.lr", float.clone()),
        ("train.lars_eta", float.clone()),
        ("train.lars_clip", flag.clone()),
        ("train.lars_scope", choice(&["\"all\""])),
        ("train.momentum", prob.clone()),
        ("train.weight_decay", float.clone()),
        ("train.schedule", choice(&["\"cosine-step\"", "\"cosine-epoch-to-zero\""])),
        ("train.warmup_epochs", float.clone()),
        ("train.warmup_shape", choice(&["\"linspace\""])),
        ("train.warmup_start_lr", float.clone()),
        ("train.min_lr", float.clone()),
        ("train.drop_last", flag.clone()),
        ("train.log_every", count.clone()),
        ("train.precision", choice(&["\"bf16\""])),
        ("eval.knn_every", count.clone()),
        ("eval.knn_k", count.clone()),
        ("eval.knn_t", float.clone()),
        ("eval.batch_size", count.clone()),
        ("eval.features", choice(&["\"backbone\""])),
        ("eval.knn_metric", choice(&["\"euclidean\""])),
        ("eval.online_probe", flag.clone()),
        ("eval.online_probe_lr", float.clone()),
        ("nonsense.key", vec!["1"]),
    ]
}

/// A small deterministic stream (64-bit LCG).
struct Stream(u64);

impl Stream {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn no_config_value_panics_or_reports_nonsense() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("crates/unmix-data/tests/fixtures/fashion-mnist");
    let tmp = tempfile::tempdir().unwrap();
    let mut stream = Stream(2026);
    let (mut finished, mut refused) = (0, 0);
    for (n, (key, values)) in cases().into_iter().enumerate() {
        // Two values per key, drawn without repeating.
        let first = stream.below(values.len());
        let second = (first + 1 + stream.below(values.len().max(2) - 1)) % values.len();
        let picks = if values.len() == 1 { vec![first] } else { vec![first, second] };
        for (j, pick) in picks.into_iter().enumerate() {
            let value = values[pick];
            let out = tmp.path().join(format!("case-{n}-{j}"));
            let sets = [
                format!("data.root=\"{}\"", fixture.display()),
                "data.limit=64".into(),
                "model.widths=[4, 4, 4, 4]".into(),
                "train.batch_size=32".into(),
                "method.queue=128".into(),
                "train.epochs=1".into(),
                "eval.knn_k=10".into(),
                "eval.batch_size=256".into(),
                "eval.online_probe=false".into(),
                format!("{key}={value}"),
            ];
            let mut args = vec![
                "pretrain".to_string(),
                "--config".into(),
                "configs/fmnist-moco-unmix.toml".into(),
                "--quiet".into(),
            ];
            for s in &sets {
                args.extend(["--set".to_string(), s.clone()]);
            }
            args.extend(["--out".to_string(), out.display().to_string()]);
            let mut child = Command::new(env!("CARGO_BIN_EXE_unmix"))
                .args(&args)
                .current_dir(root)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                if t0.elapsed() > Duration::from_secs(300) {
                    let _ = child.kill();
                    panic!("{key}={value}: still running after 300 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let o = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            let case = format!("--set {key}={value}");
            match status.code() {
                Some(0) => {
                    let summary = std::fs::read_to_string(out.join("summary.json"))
                        .unwrap_or_else(|_| panic!("{case}: exit 0 without summary.json"));
                    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
                    let top1 = s["knn"]["top1"].as_f64().unwrap_or_else(|| panic!("{case}: no kNN result: {summary}"));
                    assert!(top1.is_finite() && (0.0..=100.0).contains(&top1), "{case}: kNN {top1}");
                    assert!(s["final_loss"].as_f64().is_some_and(f64::is_finite), "{case}: {summary}");
                    finished += 1;
                }
                Some(1) => {
                    assert!(err.starts_with("error: ") && err.len() > 20, "{case}: exit 1 without a message: {err}");
                    assert!(!err.contains("panicked"), "{case}: {err}");
                    refused += 1;
                }
                other => panic!("{case}: exit {other:?} (a panic, an abort or a signal)\n{err}"),
            }
        }
    }
    // Both outcomes occur: the stream covers valid and invalid values.
    assert!(finished >= 20 && refused >= 40, "{finished} finished, {refused} refused");
}
