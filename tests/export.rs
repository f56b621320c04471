//! Export: the weights load into torchvision's ResNet with strict=True and give unmix's outputs;
//! embeddings come out as valid .npy files.

use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};
use unmix::checkpoint::{self, RUN_CHECKPOINT as CHECKPOINT};
use unmix::config::Config;
use unmix::method::Features;
use unmix::train::RunOptions;

/// Pretrains and returns rank 0's summary as JSON (what summary.json holds).
fn pretrain(cfg: &Config, opts: &RunOptions) -> anyhow::Result<serde_json::Value> {
    match unmix::train::pretrain(cfg, opts)? {
        unmix::train::Finished::Main(s) => Ok(serde_json::to_value(s)?),
        other => anyhow::bail!("not a finished run: {other:?}"),
    }
}

fn bin(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_unmix")).args(args).output().unwrap();
    assert!(out.status.success(), "unmix {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into()
}

#[test]
fn exported_backbone_matches_torchvision_and_embeddings_are_npy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("crates/unmix-data/tests/fixtures/fashion-mnist");
    // The fmnist network at torchvision's widths, trained a few steps so BN statistics are real.
    let set: Vec<String> = vec![
        format!("data.root=\"{}\"", fixture.display()),
        "data.limit=128".into(),
        "model.widths=[64, 128, 256, 512]".into(),
        "train.batch_size=64".into(),
        "method.queue=256".into(),
        "train.epochs=1".into(),
        "eval.knn_every=0".into(),
    ];
    let cfg = Config::load(&root.join("configs/fmnist-moco-unmix.toml"), &set).unwrap();
    let dir = tempfile::tempdir().unwrap();
    pretrain(&cfg, &RunOptions { out: dir.path().into(), ..Default::default() }).unwrap();
    let ckpt = dir.path().join(CHECKPOINT);
    let weights = dir.path().join("backbone.safetensors");
    bin(&["export", "--checkpoint", ckpt.to_str().unwrap(), "--out", weights.to_str().unwrap()]);

    // unmix's own outputs on a fixed input.
    let (tensors, meta) = checkpoint::load(&ckpt).unwrap();
    let cfg = Config::from_toml(&meta.config, "saved", &[]).unwrap();
    let mut method = unmix::build::method(&cfg, Device::Cpu, 1);
    method.load_state(&tensors).unwrap();
    tch::manual_seed(3);
    let x = Tensor::randn([5, 1, 28, 28], (Kind::Float, Device::Cpu));
    let (head, backbone) = tch::no_grad(|| (method.embed(&x, Features::Head), method.embed(&x, Features::Backbone)));
    let p = |n: &str| dir.path().join(n);
    unmix::export::write_npy(&p("x.npy"), &x).unwrap();
    unmix::export::write_npy(&p("head.npy"), &head).unwrap();
    unmix::export::write_npy(&p("backbone.npy"), &backbone).unwrap();
    let py = root.join(".venv/bin/python");
    let script = root.join("tests/torchvision_check.py");
    let out = Command::new(&py)
        .arg(&script)
        .args([&weights, &p("x.npy"), &p("head.npy"), &p("backbone.npy")])
        .arg("1")
        .output()
        .expect("the project's .venv (scripts/setup.sh) has python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "torchvision check failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("max |diff|"), "{stdout}");

    // Embeddings and labels as .npy, read back by numpy.
    let emb = p("emb.npy");
    bin(&["embed", "--checkpoint", ckpt.to_str().unwrap(), "--out", emb.to_str().unwrap()]);
    let check = Command::new(&py)
        .args(["-c", &format!("import numpy as np; e = np.load('{}'); l = np.load('{}'); assert e.shape == (512, 512) and e.dtype == np.float32, e.shape; assert l.shape == (512,) and l.dtype == np.int64 and l.max() == 9; print('ok')", emb.display(), p("emb.labels.npy").display())])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}
