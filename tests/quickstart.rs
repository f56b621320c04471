//! The README's "pretrain on your photos" quickstart, run as written on the sample photos that
//! scripts/setup.sh fetches (data/photos: the real photos of the foolbox and scikit-image wheels;
//! data/photos-labeled: foolbox's CIFAR-10 samples by class), and evaluation from a labeled folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The sample photos, which scripts/setup.sh (run by scripts/test.sh) fetches.
fn photos() -> PathBuf {
    let p = root().join("data/photos");
    assert!(
        p.join(".complete").is_file(),
        "{} is missing: run scripts/setup.sh (it fetches the sample photos)",
        p.display()
    );
    p
}

/// A working folder that sees the checkout's configs/ and data/ as the README's commands expect.
fn workdir() -> tempfile::TempDir {
    photos();
    let tmp = tempfile::tempdir().unwrap();
    for d in ["configs", "data"] {
        std::os::unix::fs::symlink(root().join(d), tmp.path().join(d)).unwrap();
    }
    tmp
}

fn ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{what} failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn unmix(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unmix")).args(args).current_dir(dir).output().unwrap()
}

/// The shell lines between the README's quickstart markers (comments and blank lines dropped).
fn quickstart() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("<!-- quickstart:photos -->").expect("README has the quickstart start marker");
    let end = readme.find("<!-- /quickstart:photos -->").expect("README has the quickstart end marker");
    let block = &readme[start..end];
    let lines: Vec<String> = block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("target/release/unmix "))
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .collect();
    assert!(lines.len() >= 3, "the quickstart block has its commands: {lines:?}");
    lines
}

#[test]
fn the_readme_quickstart_runs_as_written_on_the_sample_photos() {
    let tmp = workdir();
    let mut outputs = Vec::new();
    for line in quickstart() {
        let mut script = line.replacen("target/release/unmix", env!("CARGO_BIN_EXE_unmix"), 1);
        // The one change: 2 of the template's 100 epochs (the sample is one batch per epoch).
        if line.contains(" pretrain ") {
            script += " --set train.epochs=2";
        }
        let o =
            Command::new("bash").args(["-euo", "pipefail", "-c", &script]).current_dir(tmp.path()).output().unwrap();
        outputs.push(ok(o, &line));
    }
    let all = outputs.join("\n");
    let run = tmp.path().join("runs/photos");
    // Pretraining on the unlabeled folder, the queue sized to it, evaluated by kNN on the labeled
    // samples, with the raw-pixel baseline beside.
    assert!(all.contains("method.queue = \"auto\": 64 keys"), "{all}");
    assert!(run.join("checkpoints/last.safetensors").is_file());
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    assert!(metrics.lines().last().unwrap().contains("knn_top1"), "{metrics}");
    assert!(all.contains("kNN top-1") && all.contains("(raw pixels;"), "{all}");
    // The export is torchvision's ResNet-18.
    assert!(all.contains("torchvision's resnet18 takes these weights"), "{all}");
    // One embedding per photo, with the file list in the same order.
    let files = std::fs::read_to_string(run.join("embeddings.npz.files.txt")).unwrap();
    let n_photos = walk(&photos()).len();
    assert!(n_photos >= 70, "setup fetched {n_photos} photos");
    assert_eq!(files.lines().count(), n_photos);
    let script = format!(
        "import numpy as np\nz = np.load({:?})\nprint(z['embeddings'].shape[0], z['embeddings'].shape[1], int(np.isfinite(z['embeddings']).all()))",
        run.join("embeddings.npz").display().to_string()
    );
    let o = Command::new(root().join(".venv/bin/python")).args(["-c", &script]).output().unwrap();
    let shape = ok(o, "reading embeddings.npz with numpy");
    assert_eq!(shape.trim(), format!("{n_photos} 512 1"), "rows, backbone width, all finite");
    // The printed PyTorch lines load the export strictly into torchvision's ResNet-18.
    let snippet: String = all
        .lines()
        .skip_while(|l| !l.starts_with("in PyTorch:"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    assert!(snippet.contains("load("), "{all}");
    let check = format!(
        "{snippet}import torch, torchvision\nm = torchvision.models.resnet18(num_classes=128)\nm.fc = torch.nn.Identity()\n\
         sd = {{k: v for k, v in model.state_dict().items() if not k.startswith('fc.')}}\nprint(m.load_state_dict(sd, strict=True))"
    );
    let o =
        Command::new(root().join(".venv/bin/python")).args(["-c", &check]).current_dir(tmp.path()).output().unwrap();
    assert!(ok(o, "loading the export").contains("All keys matched"));
    // The report: loss and lr curves that decode, and the kNN accuracy.
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("loss.png"), "{report}");
    let script = format!(
        "from PIL import Image\nfor f in ['loss.png', 'lr.png']:\n    im = Image.open({:?} + '/' + f); im.load(); print(im.size[0] > 300)",
        run.display().to_string()
    );
    let o = Command::new(root().join(".venv/bin/python")).args(["-c", &script]).output().unwrap();
    assert_eq!(ok(o, "decoding the report's plots").trim(), "True\nTrue");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("jpg" | "jpeg" | "png" | "JPG" | "JPEG" | "PNG")
        ) {
            out.push(p);
        }
    }
    out
}

/// Pretraining on unlabeled photos, evaluated on a labeled folder: a flat ROOT/CLASS folder is
/// bank and queries at once (leave-one-out), and a ROOT/train + ROOT/val folder is bank and queries.
#[test]
fn a_labeled_folder_evaluates_an_unlabeled_pretraining() {
    let tmp = workdir();
    let d = tmp.path();
    let small = [
        "--set",
        "model.widths=[8, 16, 32, 64]",
        "--set",
        "method.queue=128",
        "--set",
        "method.mlp_hidden=64",
        "--set",
        "train.batch_size=32",
        "--set",
        "eval.knn_every=1",
        "--set",
        "train.epochs=1",
    ];
    let mut args = vec!["pretrain", "--config", "configs/photos-mocov2.toml", "--quiet", "--out", "runs/loo"];
    args.extend(small);
    args.extend(["--set", "data.eval_root=data/photos-labeled"]);
    let out = ok(unmix(d, &args), "pretrain with a flat labeled folder");
    assert!(out.contains("leave-one-out"), "{out}");
    // 20 labeled images: k 20 votes with the 19 others.
    assert!(out.contains("k 19 (eval.knn_k = 20 clamped"), "{out}");
    let m = std::fs::read_to_string(d.join("runs/loo/metrics.jsonl")).unwrap();
    assert!(m.contains("knn_top1"), "{m}");
    // No online probe: its labels would be the evaluation's own images.
    assert!(!m.contains("online_probe_top1"), "{m}");
    // The raw-pixel baseline reads the same folder with the same readout.
    let px = ok(
        unmix(d, &["knn", "--raw-pixels", "--config", "runs/loo/config.toml"]),
        "knn --raw-pixels on the labeled folder",
    );
    assert!(px.contains("raw pixels") && px.contains("leave-one-out"), "{px}");

    // ROOT/train/CLASS and ROOT/val/CLASS: the first half of each class is the bank.
    let split = d.join("split");
    for class in std::fs::read_dir(root().join("data/photos-labeled")).unwrap() {
        let class = class.unwrap().path();
        let mut files: Vec<PathBuf> = walk(&class);
        files.sort();
        for (i, f) in files.iter().enumerate() {
            let part = if i % 2 == 0 { "train" } else { "val" };
            let to = split.join(part).join(class.file_name().unwrap());
            std::fs::create_dir_all(&to).unwrap();
            std::os::unix::fs::symlink(f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    let mut args = vec!["pretrain", "--config", "configs/photos-mocov2.toml", "--quiet", "--out", "runs/split"];
    args.extend(small);
    let eval_root = format!("data.eval_root={}", split.display());
    args.extend(["--set", &eval_root]);
    let out = ok(unmix(d, &args), "pretrain with a train/val labeled folder");
    assert!(out.contains(&format!("bank = {}", split.join("train").display())), "{out}");
    assert!(!out.contains("leave-one-out"), "{out}");

    // eval_root is for folder datasets only, and an empty one is refused, both before any work.
    let e = unmix(
        d,
        &["pretrain", "--config", "configs/fmnist-moco-unmix.toml", "--out", "runs/bad", "--set", "data.eval_root=x"],
    );
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && err.contains("data.eval_root is for pretraining on a folder"), "{err}");
    assert!(!d.join("runs/bad").exists());
    let e = unmix(
        d,
        &["pretrain", "--config", "configs/photos-mocov2.toml", "--out", "runs/bad", "--set", "data.eval_root=\"\""],
    );
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && err.contains("data.eval_root is empty"), "{err}");
    // kNN of an unlabeled run without eval_root names the key and the embed command.
    let e = unmix(d, &["knn", "--raw-pixels", "--config", "configs/photos-mocov2.toml"]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && err.contains("set data.eval_root") && err.contains("embed --split images"), "{err}");
}
