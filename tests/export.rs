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

/// Trains `sets` a few steps on the Fashion-MNIST fixture, exports the backbone, and checks in
/// PyTorch (`how`: "torchvision" or "module") that the export loads strictly and gives unmix's
/// outputs. Returns the run folder (a tempdir) and its checkpoint.
fn export_and_check(sets: &[&str], how: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("crates/unmix-data/tests/fixtures/fashion-mnist");
    let mut set: Vec<String> = vec![
        format!("data.root=\"{}\"", fixture.display()),
        "data.limit=128".into(),
        "train.batch_size=64".into(),
        "method.queue=256".into(),
        "train.epochs=1".into(),
        "eval.knn_every=0".into(),
    ];
    set.extend(sets.iter().map(|s| s.to_string()));
    let cfg = Config::load(&root.join("configs/fmnist-moco-unmix.toml"), &set).unwrap();
    let dir = tempfile::tempdir().unwrap();
    pretrain(&cfg, &RunOptions { out: dir.path().join("run"), ..Default::default() }).unwrap();
    let ckpt = dir.path().join("run").join(CHECKPOINT);
    let weights = dir.path().join("backbone.safetensors");
    let said = bin(&["export", "--checkpoint", ckpt.to_str().unwrap(), "--out", weights.to_str().unwrap()]);
    assert!(said.contains("from backbone import load") && dir.path().join("backbone.py").exists(), "{said}");

    // unmix's own outputs on a fixed input.
    let (tensors, meta) = checkpoint::load(&ckpt).unwrap();
    let cfg = Config::from_toml(&meta.config, "saved", &[]).unwrap();
    let mut method = unmix::build::method(&cfg, Device::Cpu, 1);
    method.load_state(&tensors).unwrap();
    let x = Tensor::randn([5, 1, 28, 28], (Kind::Float, Device::Cpu));
    let (head, backbone) = tch::no_grad(|| (method.embed(&x, Features::Head), method.embed(&x, Features::Backbone)));
    let reference = dir.path().join("reference.npz");
    Tensor::write_npz(&[("x", &x), ("head", &head), ("backbone", &backbone)], &reference).unwrap();
    let py = root.join(".venv/bin/python");
    let out = Command::new(&py)
        .arg(root.join("tests/torchvision_check.py"))
        .args([weights.to_str().unwrap(), reference.to_str().unwrap(), how, "1"])
        .output()
        .expect("the project's .venv (scripts/setup.sh) has python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{how} check failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("max |diff|"), "{stdout}");
    (dir, ckpt)
}

#[test]
fn the_fmnist_network_loads_strictly_through_the_exported_module() {
    // Widths 16-128 on one channel: not a torchvision ResNet, and export says so.
    let (dir, ckpt) = export_and_check(&[], "module");
    let said = bin(&[
        "export",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--out",
        dir.path().join("b2.safetensors").to_str().unwrap(),
    ]);
    assert!(said.contains("not one of torchvision's ResNets"), "{said}");
    // The checkpoint's own header says what it holds too.
    let header = unmix::checkpoint::read_header_metadata(&ckpt).unwrap();
    assert_eq!(
        (header["arch"].as_str(), header["widths"].as_str(), header["in_channels"].as_str()),
        ("resnet18", "[16, 32, 64, 128]", "1")
    );
    assert!(header["config"].contains("[method]") && header["method"] == "moco", "{header:?}");
}

#[test]
fn resnet18_at_torchvision_widths_loads_into_torchvision_and_embeddings_are_npz() {
    let (dir, ckpt) = export_and_check(&["model.widths=[64, 128, 256, 512]"], "torchvision");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let emb = dir.path().join("emb.npz");
    bin(&["embed", "--checkpoint", ckpt.to_str().unwrap(), "--out", emb.to_str().unwrap()]);
    let check = Command::new(root.join(".venv/bin/python"))
        .args(["-c", &format!("import numpy as np; z = np.load('{}'); e, l = z['embeddings'], z['labels']; assert e.shape == (512, 512) and e.dtype == np.float32, e.shape; assert l.shape == (512,) and l.dtype == np.int64 and l.max() == 9; print('ok')", emb.display())])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn resnet50_loads_strictly_through_the_exported_module() {
    export_and_check(&["model.arch=\"resnet50\"", "model.widths=[8, 16, 32, 64]", "model.cifar_stem=false"], "module");
}
