//! The command line: clear errors for user mistakes, never a panic.

use std::process::Command;

fn unmix(args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_unmix")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let (code, _, err) = unmix(&["pretrain", "--config", "configs/fmnist-moco-unmix.toml", "--set", "train.epochz=3"]);
    assert_eq!(code, 1);
    assert!(err.contains("epochz"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_value_is_an_error_naming_the_key() {
    let (code, _, err) =
        unmix(&["pretrain", "--config", "configs/fmnist-moco-unmix.toml", "--set", "train.batch_size=100"]);
    assert_eq!(code, 1);
    assert!(err.contains("train.batch_size") && err.contains("bn_splits"), "{err}");
}

#[test]
fn missing_config_and_data_are_named() {
    let (code, _, err) = unmix(&["pretrain", "--config", "configs/nope.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("configs/nope.toml"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (code, _, err) = unmix(&[
        "pretrain",
        "--config",
        "configs/fmnist-moco-unmix.toml",
        "--data",
        "/nonexistent/fm",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/fm"), "{err}");
    let (code, _, err) = unmix(&["knn", "--checkpoint", "/nonexistent/last.safetensors"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/last.safetensors"), "{err}");
}

#[test]
fn help_explains_every_option() {
    let (code, out, _) = unmix(&["pretrain", "--help"]);
    assert_eq!(code, 0);
    for opt in ["--config", "--set", "--data", "--out", "--resume", "--until-epoch"] {
        assert!(out.contains(opt), "pretrain --help lacks {opt}");
    }
    let (_, out, _) = unmix(&["knn", "--help"]);
    for opt in ["--checkpoint", "--data", "--k", "--t"] {
        assert!(out.contains(opt), "knn --help lacks {opt}");
    }
}

#[test]
fn preview_writes_a_png_grid_on_real_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.png");
    let (code, stdout, err) = unmix(&[
        "preview",
        "--config",
        "configs/cifar10-moco-unmix.toml",
        "--data",
        "crates/unmix-data/tests/fixtures/cifar-10-batches-bin",
        "--images",
        "6",
        "--mode",
        "cutmix",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("CutMix with lambda"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    // IHDR: width and height, big-endian, at bytes 16..24: 4 columns of 128 px + gaps; 6 rows.
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(w, 4 * (128 + 4) + 4);
    assert_eq!(h, 30 + 6 * (128 + 4) + 34);
}

#[test]
fn compare_runs_both_arms_on_the_same_seeds_and_writes_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let tiny = [
        "--data",
        "crates/unmix-data/tests/fixtures/fashion-mnist",
        "--set",
        "data.limit=256",
        "--set",
        "model.widths=[8, 8, 16, 16]",
        "--set",
        "train.batch_size=64",
        "--set",
        "method.queue=256",
        "--set",
        "train.epochs=2",
        "--set",
        "eval.knn_k=20",
    ];
    // An interrupted arm: seed 0 without Un-Mix stopped after its first epoch.
    let mut args = vec![
        "pretrain",
        "--config",
        "configs/fmnist-moco-unmix.toml",
        "--quiet",
        "--until-epoch",
        "1",
        "--set",
        "unmix.enabled=false",
    ];
    args.extend(tiny);
    let base0 = format!("{out}/base-seed0");
    args.extend(["--out", base0.as_str()]);
    let (code, _, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");

    let mut args =
        vec!["compare", "--config", "configs/fmnist-moco-unmix.toml", "--seeds", "2", "--quiet", "--out", out];
    args.extend(tiny);
    let (code, stdout, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("resuming") && stdout.contains("at epoch 1 of 2"), "{stdout}");
    assert!(stdout.contains("mean +- std") && stdout.contains("+ Un-Mix - base"), "{stdout}");
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("compare.json")).unwrap()).unwrap()
    };
    let v = read();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    // Seeds 0 and 1, each with Un-Mix off and on.
    let pairs: Vec<(bool, u64)> =
        runs.iter().map(|r| (r["unmix"].as_bool().unwrap(), r["seed"].as_u64().unwrap())).collect();
    assert_eq!(pairs, vec![(false, 0), (true, 0), (false, 1), (true, 1)]);
    for arm in ["base-seed0", "unmix-seed0", "base-seed1", "unmix-seed1"] {
        let cfg = std::fs::read_to_string(dir.path().join(arm).join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("enabled = {}", arm.starts_with("unmix"))), "{arm}");
    }
    // The paired differences are + Un-Mix minus base of the same seed.
    let top1 = |i: usize| runs[i]["knn_top1"].as_f64().unwrap();
    let d = v["paired_difference"]["per_seed"].as_array().unwrap();
    assert_eq!(d[0].as_f64().unwrap(), top1(1) - top1(0));
    assert_eq!(d[1].as_f64().unwrap(), top1(3) - top1(2));
    assert!(dir.path().join("compare.png").exists());

    // The same command again trains nothing and gives the same table, also for an arm whose
    // weights were moved away (only its records kept).
    std::fs::remove_dir_all(dir.path().join("unmix-seed1").join("checkpoints")).unwrap();
    let (code, stdout, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.matches("finished earlier").count(), 4, "{stdout}");
    let again = read();
    assert_eq!(again["paired_difference"], v["paired_difference"]);
    assert!(again["runs"].as_array().unwrap().iter().all(|r| r["trained_now"] == false));

    // Another configuration into the same folder is refused, naming the folder.
    let mut other = args.clone();
    other.extend(["--set", "train.lr=0.01"]);
    let (code, _, err) = unmix(&other);
    assert_eq!(code, 1);
    assert!(err.contains("base-seed0") && err.contains("another configuration"), "{err}");
}
