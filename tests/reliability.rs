//! The hostile cases of issue 19, each as a careless or unlucky user meets it through the command
//! line: a run folder belongs to one run, the checkpoint is the records' truth, no panic reaches
//! the user, and nothing wrong is reported with exit status 0.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[test]
fn a_new_run_into_a_used_folder_is_refused_and_force_moves_the_old_one_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &[], &["--until-epoch", "1"]));
    let before = std::fs::read(ckpt(&dir)).unwrap();
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    // Another config into the same folder: refused, nothing touched.
    let err = refused(&pretrain(&dir, &["train.lr=0.01"], &[]));
    assert!(err.contains("--resume") && err.contains("--force") && err.contains("already holds"), "{err}");
    assert_eq!(std::fs::read(ckpt(&dir)).unwrap(), before);
    assert_eq!(std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap(), metrics);
    // --force moves the old run aside whole, then trains the new one.
    let o = pretrain(&dir, &["train.lr=0.01"], &["--force", "--until-epoch", "1"]);
    ok(&o);
    let moved: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("run.old-"))
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(std::fs::read(ckpt(&moved[0])).unwrap(), before);
    assert!(text(&o).0.contains("moved the earlier contents"));
}

#[test]
fn resuming_a_finished_run_says_so_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &[], &[]));
    let files = ["summary.json", "metrics.jsonl", "steps.jsonl", "config.toml", "report.md"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect();
    let o = resume(&dir, &[]);
    ok(&o);
    assert!(text(&o).0.contains("finished all 2 epochs; nothing to do"), "{}", text(&o).0);
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(dir.join(f)).unwrap(), b, "{f} changed");
    }
}

#[test]
fn a_failed_resume_with_overrides_leaves_the_run_resumable_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &["unmix.enabled=false"], &["--until-epoch", "1"]));
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    // Another learning rate: a resume keeps the run's meaning, so it is refused, naming the key.
    let err = refused(&resume(&dir, &["train.lr=1e30"]));
    assert!(err.contains("cannot change train.lr") && err.contains("--set"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("config.toml")).unwrap(), config);
    // A change the checkpoint cannot take: refused before anything is written.
    let err = refused(&resume(&dir, &["model.widths=[8, 8, 8, 8]"]));
    assert!(err.contains("cannot change") && err.contains("model"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("config.toml")).unwrap(), config);
    // A plain resume then finishes the run with its own learning rate.
    ok(&resume(&dir, &[]));
    let epochs: Vec<u64> = lines(&dir.join("metrics.jsonl")).iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 2]);
}

#[test]
fn the_moco_queue_takes_partial_batches_and_a_resume_keeps_the_batch_size() {
    let tmp = tempfile::tempdir().unwrap();
    // 250 images in batches of 32: a last batch of 26, so the queue pointer leaves multiples of 32.
    let dir = tmp.path().join("partial");
    ok(&pretrain(&dir, &["data.limit=250", "train.drop_last=false"], &[]));
    // A batch size changed on resume would change what every later step sees: refused.
    let dir = tmp.path().join("rebatch");
    ok(&pretrain(&dir, &["train.drop_last=false", "data.limit=250"], &["--until-epoch", "1"]));
    let err = refused(&resume(&dir, &["train.batch_size=64"]));
    assert!(err.contains("train.batch_size (was 32, now 64)"), "{err}");
    ok(&resume(&dir, &[]));
}

/// Rewrites a checkpoint with `edit` applied to its tensors (through the library, so its
/// checksum stays valid: a damage the checksum cannot see).
fn doctor(path: &Path, edit: impl Fn(&mut Vec<(String, tch::Tensor)>)) {
    let (mut tensors, meta) = unmix::checkpoint::load(path).unwrap();
    edit(&mut tensors);
    unmix::checkpoint::save(path, &tensors, &meta).unwrap();
}

#[test]
fn damaged_checkpoints_are_errors_that_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &[], &["--until-epoch", "1"]));
    let pristine = std::fs::read(ckpt(&dir)).unwrap();
    // A probe tensor of the wrong shape.
    doctor(&ckpt(&dir), |t| {
        t.iter_mut().find(|(n, _)| n == "probe.fc.weight").unwrap().1 =
            tch::Tensor::zeros([3, 3], (tch::Kind::Float, tch::Device::Cpu))
    });
    let err = refused(&resume(&dir, &[]));
    assert!(err.contains("probe.fc.weight"), "{err}");
    // A queue pointer outside the queue.
    std::fs::write(ckpt(&dir), &pristine).unwrap();
    doctor(&ckpt(&dir), |t| {
        t.iter_mut().find(|(n, _)| n == "moco.ptr").unwrap().1 = tch::Tensor::from_slice(&[5000i64])
    });
    let err = refused(&resume(&dir, &[]));
    assert!(err.contains("moco.ptr"), "{err}");
    // NaN weights: evaluation refuses them.
    std::fs::write(ckpt(&dir), &pristine).unwrap();
    doctor(&ckpt(&dir), |t| {
        let w = &mut t.iter_mut().find(|(n, _)| n == "q.head.fc.weight").unwrap().1;
        *w = w.fill(f64::NAN);
    });
    let err = refused(&run(&["knn", "--checkpoint", ckpt(&dir).to_str().unwrap()]));
    assert!(err.contains("q.head.fc.weight") && err.contains("NaN"), "{err}");
    // A flipped bit in the file: the checksum catches it.
    let mut bytes = pristine.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(ckpt(&dir), &bytes).unwrap();
    let err = refused(&run(&["knn", "--checkpoint", ckpt(&dir).to_str().unwrap()]));
    assert!(err.contains("damaged"), "{err}");
}

#[test]
fn a_closed_stdout_ends_the_run_cleanly_with_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut a = tiny(&[]);
    a.extend(["--out".to_string(), dir.display().to_string()]);
    // `unmix pretrain ... | head -0`: the reader is gone before the first line.
    let mut child =
        Command::new(bin()).args(&a).current_dir(root()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("standard output was closed") && err.contains("--resume"), "{err}");
    assert!(ckpt(&dir).exists());
    ok(&resume(&dir, &[]));
    assert!(dir.join("summary.json").exists());
}

#[test]
fn logs_are_cut_back_to_the_checkpoint_on_resume_and_a_torn_line_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &[], &["--until-epoch", "1"]));
    // What a kill leaves after the checkpoint: steps of a lost epoch and a torn line.
    let mut steps = std::fs::read_to_string(dir.join("steps.jsonl")).unwrap();
    steps += "{\"step\":9,\"epoch\":2,\"loss\":99.0,\"lr\":0.03}\n{\"step\":10,\"ep";
    std::fs::write(dir.join("steps.jsonl"), steps).unwrap();
    let mut metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    metrics += "{\"epoch\":2,\"loss\":99.0}\n";
    std::fs::write(dir.join("metrics.jsonl"), metrics).unwrap();
    // The report reads past the torn line with a warning.
    let o = run(&["report", dir.to_str().unwrap()]);
    ok(&o);
    assert!(text(&o).1.contains("torn last line"), "{}", text(&o).1);
    ok(&resume(&dir, &[]));
    let s: Vec<u64> = lines(&dir.join("steps.jsonl")).iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(s, (1..=16).collect::<Vec<_>>(), "each step once, in order");
    let m = lines(&dir.join("metrics.jsonl"));
    assert_eq!(m.iter().map(|l| l["epoch"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);
    assert!(m[1]["loss"].as_f64().unwrap() < 99.0);
}

/// Writes an IDX image file (uncompressed) of `n` images of `side` x `side`.
fn write_idx(path: &Path, n: usize, side: usize, pixels: &[u8]) {
    let mut b = vec![0u8, 0, 8, 3];
    for d in [n, side, side] {
        b.extend((d as u32).to_be_bytes());
    }
    b.extend_from_slice(pixels);
    std::fs::write(path, b).unwrap();
}

#[test]
fn splits_of_different_images_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("fm");
    std::fs::create_dir(&data).unwrap();
    for f in ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
        std::fs::copy(fixture().join(f), data.join(f)).unwrap();
    }
    // The real test images, every other row and column: 14 x 14.
    let test = unmix_data::idx::load_mnist_like(&fixture(), false).unwrap();
    let mut px = Vec::new();
    for i in 0..test.len() {
        let img = test.image(i);
        for y in (0..28).step_by(2) {
            for x in (0..28).step_by(2) {
                px.push(img.data[y * 28 + x]);
            }
        }
    }
    write_idx(&data.join("t10k-images-idx3-ubyte"), test.len(), 14, &px);
    let dir = tmp.path().join("run");
    let mut a = tiny(&[]);
    a.extend(["--data".to_string(), data.display().to_string(), "--out".to_string(), dir.display().to_string()]);
    let err = refused(&Command::new(bin()).args(&a).current_dir(root()).output().unwrap());
    assert!(err.contains("14x14") && err.contains("28x28"), "{err}");
    assert!(!dir.exists(), "a refused run leaves no folder");
    // Every command that reads both splits checks them as pretrain does.
    let d = data.display().to_string();
    let err = refused(&run(&["knn", "--raw-pixels", "--config", "configs/fmnist-moco-unmix.toml", "--data", &d]));
    assert!(err.contains("14x14") && err.contains("28x28"), "{err}");
}

#[test]
fn evaluation_commands_refuse_nonsense_and_write_only_where_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &[], &["--until-epoch", "1"]));
    let c = ckpt(&dir);
    let cs = c.to_str().unwrap();
    // Nonsense probe settings: refused before any work, nothing written.
    for bad in [&["--epochs", "0"][..], &["--lr=-1"], &["--lr=nan"], &["--lr=inf"]] {
        let mut a = vec!["linear", "--checkpoint", cs];
        a.extend(bad);
        let err = refused(&run(&a));
        assert!(err.contains("--epochs") || err.contains("--lr"), "{err}");
    }
    assert!(!dir.join("linear.json").exists());
    // A probe of a run folder's checkpoint: its record beside the run, with its cost and machine.
    ok(&run(&["linear", "--checkpoint", cs, "--epochs", "1"]));
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("linear.json")).unwrap()).unwrap();
    assert!(rec["top1"].as_f64().is_some(), "{rec}");
    assert!(rec["wall_seconds"].as_f64().is_some_and(|s| s > 0.0), "{rec}");
    assert!(rec["peak_rss_mib"].as_f64().is_some_and(|m| m > 0.0), "{rec}");
    assert!(rec["machine"].as_str().is_some_and(|m| m.contains(" cores")), "{rec}");
    // A checkpoint outside a run folder: results are not written two folders up.
    let loose = tmp.path().join("a/b");
    std::fs::create_dir_all(&loose).unwrap();
    let copy = loose.join("last.safetensors");
    std::fs::copy(&c, &copy).unwrap();
    let o = run(&["linear", "--checkpoint", copy.to_str().unwrap(), "--epochs", "1"]);
    ok(&o);
    assert!(text(&o).0.contains("not saved"), "{}", text(&o).0);
    // The result names the pretraining epochs apart from the probe's own.
    assert!(text(&o).0.contains("; the backbone after 1 pretraining epoch; "), "{}", text(&o).0);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2, "only run/ and a/");
    let err = refused(&run(&["export", "--checkpoint", copy.to_str().unwrap()]));
    assert!(err.contains("--out"), "{err}");
    // Export over the checkpoint itself: refused, the checkpoint intact.
    let before = std::fs::read(&c).unwrap();
    let err = refused(&run(&["export", "--checkpoint", cs, "--out", cs]));
    assert!(err.contains("refusing to write over it"), "{err}");
    assert_eq!(std::fs::read(&c).unwrap(), before);
    // Embed into a missing folder: refused at once.
    let err = refused(&run(&["embed", "--checkpoint", cs, "--out", "/nonexistent/e.npy"]));
    assert!(err.contains("/nonexistent"), "{err}");
    // A kNN k above the bank's 1024 images is reported as clamped.
    let o = run(&["knn", "--checkpoint", cs, "--k", "5000"]);
    ok(&o);
    assert!(text(&o).0.contains("eval.knn_k = 5000 clamped to the bank's 1024 images"), "{}", text(&o).0);
}

#[test]
fn small_things_a_user_meets() {
    let tmp = tempfile::tempdir().unwrap();
    // An error in a --set key is blamed on the --set, not the file.
    let err = refused(&run(&["pretrain", "--config", "configs/fmnist-moco-unmix.toml", "--set", "train.epochz=3"]));
    assert!(err.contains("--set train.epochz=3"), "{err}");
    let err = refused(&run(&["pretrain", "--config", "configs/fmnist-moco-unmix.toml", "--set", "method.queu=3"]));
    assert!(err.contains("--set method.queu=3") && err.contains("queu"), "{err}");
    // --until-epoch 0 is a usage error that says what is allowed.
    let o = run(&["pretrain", "--config", "configs/fmnist-moco-unmix.toml", "--until-epoch", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--until-epoch"), "{}", text(&o).1);
    // A validation error inside pretraining leaves no run folder behind.
    let dir = tmp.path().join("never");
    let mut a = tiny(&[]);
    a.extend(["--data", "/nonexistent/fm", "--out", dir.to_str().unwrap()].iter().map(|s| s.to_string()));
    refused(&Command::new(bin()).args(&a).current_dir(root()).output().unwrap());
    assert!(!dir.exists());
    // A relative data.root is recorded absolute: evaluation from another folder finds the data.
    let dir = tmp.path().join("rel");
    let mut a = tiny_without_root(&[]);
    a.extend(
        [
            "--data",
            "crates/unmix-data/tests/fixtures/fashion-mnist",
            "--out",
            dir.to_str().unwrap(),
            "--until-epoch",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    ok(&Command::new(bin()).args(&a).current_dir(root()).output().unwrap());
    let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(cfg.contains(&format!("root = \"{}\"", fixture().display())), "{cfg}");
    let o = Command::new(bin())
        .args(["knn", "--checkpoint", ckpt(&dir).to_str().unwrap()])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    ok(&o);
}

#[cfg(unix)]
#[test]
fn ctrl_c_finishes_the_step_writes_a_checkpoint_and_the_resumed_run_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    ok(&pretrain(&whole, &[], &[]));
    let dir = tmp.path().join("stopped");
    let mut a = tiny(&[]);
    a.extend(["--out".to_string(), dir.display().to_string()]);
    let mut child =
        Command::new(bin()).args(&a).current_dir(root()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Interrupt after the third step's record (inside epoch 1 of 8 steps).
    wait_for(&mut child, "three steps", || line_count(&dir.join("steps.jsonl")) >= 3);
    // SAFETY: sends SIGINT to the child we spawned (and still own).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted") && err.contains("--resume"), "{err}");
    let (_, meta) = unmix::checkpoint::load(&ckpt(&dir)).unwrap();
    assert!(meta.step >= 3, "{meta:?}");
    ok(&resume(&dir, &[]));
    // Bit for bit the uninterrupted run: every step's loss and the final weights.
    let loss = |d: &Path| {
        lines(&d.join("steps.jsonl"))
            .iter()
            .map(|l| (l["step"].as_u64().unwrap(), l["loss"].as_f64().unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(loss(&dir), loss(&whole));
    let (a, _) = unmix::checkpoint::load(&ckpt(&dir)).unwrap();
    let (b, _) = unmix::checkpoint::load(&ckpt(&whole)).unwrap();
    let mut a = a;
    let mut b = b;
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    for ((n, x), (m, y)) in a.iter().zip(&b) {
        assert_eq!(n, m);
        assert!(x.equal(y), "{n} differs after the interrupted run");
    }
}
