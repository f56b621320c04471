//! The command line: clear errors for user mistakes, never a panic.

use std::process::Command;

fn unmix(args: &[&str]) -> (i32, String, String) {
    unmix_env(args, &[])
}

/// `unmix` with environment variables set.
fn unmix_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_unmix"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The comparisons' tiny protocol: 256 Fashion-MNIST fixture images in batches of 64 (4 steps per
/// epoch, 8 in 2 epochs), a narrow network and a short queue.
const TINY: &[&str] = &[
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
    assert!(stdout.contains("Un-Mix: CutMix, lambda = "), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    // IHDR: width and height, big-endian, at bytes 16..24: 4 columns of 128 px + gaps; 6 rows.
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(w, 4 * (128 + 4) + 4);
    assert_eq!(h, 30 + 6 * (128 + 4) + 34);
}

#[test]
fn preview_shows_the_rival_mixtures_with_a_lambda_per_row() {
    let dir = tempfile::tempdir().unwrap();
    for (rival, rows, says) in [("imix", 6, "i-Mix: a random partner each"), ("mixco", 3, "MixCo: i with i + N/2")] {
        let out = dir.path().join(format!("{rival}.png"));
        let (code, stdout, err) = unmix(&[
            "preview",
            "--config",
            "configs/cifar10-moco-unmix.toml",
            "--data",
            "crates/unmix-data/tests/fixtures/cifar-10-batches-bin",
            "--set",
            "unmix.enabled=false",
            "--set",
            &format!("{rival}.enabled=true"),
            "--set",
            "method.symmetric=false",
            "--images",
            "6",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(stdout.contains(says), "{stdout}");
        let bytes = std::fs::read(&out).unwrap();
        // 4 columns of 128 px + gaps and a 130 px column of lambdas; one row per mixture (MixCo:
        // N/2).
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), (4 * (128 + 4) + 4 + 130, 30 + rows * (128 + 4) + 34), "{rival}");
    }
    // Un-Mix's --mode has no meaning for the rivals.
    let (code, _, err) = unmix(&[
        "preview",
        "--config",
        "configs/cifar10-moco-unmix.toml",
        "--data",
        "crates/unmix-data/tests/fixtures/cifar-10-batches-bin",
        "--set",
        "unmix.enabled=false",
        "--set",
        "imix.enabled=true",
        "--set",
        "method.symmetric=false",
        "--mode",
        "mixup",
        "--out",
        dir.path().join("x.png").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--mode") && err.contains("imix"), "{err}");
}

#[test]
fn compare_matches_an_arms_compute_in_whole_steps_and_runs_the_rival_mixtures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // 256 images in batches of 64: 4 steps per epoch, 8 in the config's 2 epochs.
    let args = [
        "compare",
        "--config",
        "configs/fmnist-moco-unmix.toml",
        "--seeds",
        "1",
        "--quiet",
        "--out",
        out,
        "--arms",
        "base,unmix,base@unmix,imix,mixco@unmix",
        "--reference",
        "base",
    ]
    .into_iter()
    .chain(TINY.iter().copied())
    .collect::<Vec<&str>>();
    let (code, stdout, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");
    // base@unmix: 8 x 7 / 4 = 14 steps, said in the output; mixco@unmix: 8 x 7 / 5.5 = 10.18 -> 10.
    assert!(
        stdout.contains("base@unmix: 14 steps (3.50 epochs) at 4 passes per image = the counted compute of unmix over 2 epochs (8 steps at 7), ratio 1.0000"),
        "{stdout}"
    );
    assert!(stdout.contains("mixco@unmix: 10 steps (2.50 epochs) at 5.5 passes per image"), "{stdout}");
    let json = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let lines = |p: std::path::PathBuf| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // The matched run stops inside its 4th epoch at step 14, its schedule spanning the 14 steps.
    let matched = dir.path().join("base@unmix-seed0");
    let s = json(matched.join("summary.json"));
    assert_eq!(
        (s["epochs"].as_u64(), s["cost"]["steps"].as_u64(), s["mixture"].as_str()),
        (Some(4), Some(14), Some("none"))
    );
    let epochs = lines(matched.join("metrics.jsonl"));
    let steps: Vec<u64> = epochs.iter().map(|e| e["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [4, 8, 12, 14]);
    let logged = lines(matched.join("steps.jsonl"));
    let last = logged.last().unwrap();
    assert_eq!(last["step"].as_u64(), Some(14));
    // lr 0.03 x 0.5 (1 + cos(pi e / 3.5)) in epoch e = 3 (cosine-epoch over 14 / 4 epochs).
    let lr = 0.03 * 0.5 * (1.0 + (std::f64::consts::PI * 3.0 / 3.5).cos());
    assert!((last["lr"].as_f64().unwrap() - lr).abs() < 1e-12, "{last}");
    assert!(std::fs::read_to_string(matched.join("config.toml")).unwrap().contains("steps = 14"));
    // The rivals train with MoCo and say so; i-Mix has no clean view-1 features for the probe.
    let imix = json(dir.path().join("imix-seed0/summary.json"));
    assert_eq!((imix["mixture"].as_str(), imix["cost"]["passes_per_image"].as_f64()), (Some("imix"), Some(4.0)));
    assert!(imix["online_probe"].is_null() && imix["knn"]["top1"].as_f64().is_some());
    let mixco = json(dir.path().join("mixco@unmix-seed0/summary.json"));
    assert_eq!((mixco["mixture"].as_str(), mixco["cost"]["passes_per_image"].as_f64()), (Some("mixco"), Some(5.5)));
    // The table: cost and compute beside accuracy; one seed gives no interval.
    let md = std::fs::read_to_string(dir.path().join("compare.md")).unwrap();
    assert!(md.contains("| base@unmix | 4 | 14 | 0.00358 | 1.750 |"), "{md}");
    assert!(md.contains("| mixco@unmix | 5.5 | 10 | 0.00352 | 1.719 |"), "{md}");
    assert!(md.contains("n/a (1 seed)"), "{md}");
}

#[test]
fn compare_runs_both_arms_on_the_same_seeds_and_writes_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
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
    args.extend_from_slice(TINY);
    let base0 = format!("{out}/base-seed0");
    args.extend(["--out", base0.as_str()]);
    let (code, _, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");

    let mut args =
        vec!["compare", "--config", "configs/fmnist-moco-unmix.toml", "--seeds", "2", "--quiet", "--out", out];
    args.extend_from_slice(TINY);
    let (code, stdout, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("resuming") && stdout.contains("at step 4 (1 of 2 epochs finished)"), "{stdout}");
    // The pretraining says where it goes on in the same words.
    assert!(stdout.contains("resumed from") && stdout.contains("at step 4 (1 of 2 epochs finished)"), "{stdout}");
    assert!(
        stdout.contains("Comparison at counted compute") && stdout.contains("Paired differences to `base`"),
        "{stdout}"
    );
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("compare.json")).unwrap()).unwrap()
    };
    let v = read();
    let arms = v["arms"].as_array().unwrap();
    let names: Vec<&str> = arms.iter().map(|a| a["arm"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "unmix"]);
    // Seeds 0 and 1 in each arm, with their counted cost: MoCo 4, + Un-Mix 7 passes per image.
    for (a, passes) in arms.iter().zip([4.0, 7.0]) {
        let seeds: Vec<u64> = a["runs"].as_array().unwrap().iter().map(|r| r["seed"].as_u64().unwrap()).collect();
        assert_eq!(seeds, [0, 1]);
        assert_eq!(a["cost"]["passes_per_image"].as_f64(), Some(passes));
        assert_eq!(a["cost"]["steps"].as_u64(), Some(8));
    }
    for arm in ["base-seed0", "unmix-seed0", "base-seed1", "unmix-seed1"] {
        let cfg = std::fs::read_to_string(dir.path().join(arm).join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("enabled = {}", arm.starts_with("unmix"))), "{arm}");
        // Each run's summary holds both readouts and its cost.
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(arm).join("summary.json")).unwrap()).unwrap();
        assert_eq!(s["knn_head"]["top1"], s["knn"]["top1"], "{arm}: the fmnist config reads the head");
        assert!(
            s["knn_backbone"]["top1"].as_f64().is_some()
                && s["knn_backbone"]["protocol"].as_str().unwrap().contains("backbone")
        );
        assert_eq!(s["cost"]["passes_per_image"].as_f64(), Some(if arm.starts_with("unmix") { 7.0 } else { 4.0 }));
    }
    // The paired differences are + Un-Mix minus base of the same seed.
    let top1 = |a: usize, i: usize| arms[a]["runs"][i]["knn_top1"].as_f64().unwrap();
    let d = &arms[1]["paired_difference_to_reference"][0];
    assert_eq!(d["readout"], "head output");
    let per_seed: Vec<f64> = d["per_seed"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(per_seed, [top1(1, 0) - top1(0, 0), top1(1, 1) - top1(0, 1)]);
    assert!(d["ci95"].as_array().is_some_and(|ci| ci.len() == 2), "{d}");
    assert!(dir.path().join("compare.png").exists());
    // Every run trained here: one machine class, named in the table and the record.
    assert!(stdout.contains("Machine class of every run: "), "{stdout}");
    assert_eq!(v["machine_classes"].as_array().map(Vec::len), Some(1), "{}", v["machine_classes"]);

    // The same command again trains nothing and gives the same table, also for an arm whose
    // weights were moved away (only its records kept).
    std::fs::remove_dir_all(dir.path().join("unmix-seed1").join("checkpoints")).unwrap();
    let (code, stdout, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.matches("finished earlier").count(), 4, "{stdout}");
    let again = read();
    assert_eq!(again["arms"][1]["paired_difference_to_reference"], v["arms"][1]["paired_difference_to_reference"]);
    assert!(again["arms"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["runs"].as_array().unwrap())
        .all(|r| r["trained_now"] == false));

    // Another configuration into the same folder is refused, naming the folder.
    let mut other = args.clone();
    other.extend(["--set", "train.lr=0.01"]);
    let (code, _, err) = unmix(&other);
    assert_eq!(code, 1);
    assert!(err.contains("base-seed0") && err.contains("another configuration"), "{err}");
}

/// A run interrupted on one machine class: `unmix compare` refuses to go on beside it on another
/// (naming the run), and a resume there says so and lists both machines in the summary, which the
/// comparison's table then shows as a class of its own. `UNMIX_CPUINFO` plays the other class.
#[test]
fn a_run_interrupted_on_another_machine_class_is_named_by_compare_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let cpuinfo = dir.path().join("cpuinfo");
    std::fs::write(&cpuinfo, "cpu family\t: 6\nmodel\t\t: 1\nmodel name\t: Played CPU\nflags\t\t: fpu avx2 fma\n")
        .unwrap();
    let played = [("UNMIX_CPUINFO", cpuinfo.as_path())];
    let run = |args: &[&str], play: bool| unmix_env(args, if play { &played } else { &[] });
    let tiny: Vec<&str> =
        ["--config", "configs/fmnist-moco-unmix.toml", "--quiet"].into_iter().chain(TINY.iter().copied()).collect();
    let base0 = format!("{out}/base-seed0");
    let mut args = vec!["pretrain", "--set", "unmix.enabled=false", "--until-epoch", "1", "--out", base0.as_str()];
    args.extend_from_slice(&tiny);
    let (code, _, err) = run(&args, true);
    assert_eq!(code, 0, "{err}");

    let mut compare: Vec<&str> = vec!["compare", "--seeds", "1", "--out", out];
    compare.extend(tiny.iter().copied());
    let (code, stdout, err) = run(&compare, false);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        err.contains("base-seed0") && err.contains("Played CPU, ") && err.contains("--allow-mixed-machines"),
        "{err}"
    );
    assert!(!dir.path().join("unmix-seed0").exists());

    let (code, stdout, err) = run(&["pretrain", "--resume", "--quiet", "--out", base0.as_str()], false);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("warning: this run trained on another machine class (Played CPU, "), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("base-seed0/summary.json")).unwrap()).unwrap();
    let machines = summary["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 2, "{summary}");
    assert!(machines[0].as_str().unwrap().starts_with("Played CPU, "), "{summary}");
    assert_eq!(machines[1], summary["machine"]);
    // A finished run read again elsewhere (its summary gone) trains no step there: its machines
    // and machine stay those that trained it, and nothing is said about going on.
    let summary_path = dir.path().join("base-seed0/summary.json");
    std::fs::remove_file(&summary_path).unwrap();
    let (code, stdout, err) = run(&["pretrain", "--resume", "--quiet", "--out", base0.as_str()], true);
    assert_eq!(code, 0, "{err}");
    assert!(!stdout.contains("warning: this run trained on another machine class"), "{stdout}");
    let again: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!((&again["machines"], &again["machine"]), (&summary["machines"], &summary["machine"]));

    // The resumed run last trained here: the comparison goes on, and its table shows the run's
    // two classes as a class of its own.
    let (code, stdout, err) = run(&compare, false);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("span 2 machine classes") && stdout.contains(", then "), "{stdout}");
}

/// The GPU check's dry run on the CPU (`unmix selftest --device cpu`, what scripts/gpu-check.sh
/// --dry-run runs): every check runs on this machine, each within its bound, exit status 0.
#[test]
fn selftest_dry_run_passes_every_check_on_the_cpu() {
    let (code, stdout, err) = unmix(&["selftest", "--device", "cpu"]);
    assert_eq!(code, 0, "{stdout}{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("selftest prints one JSON object");
    assert_eq!(v["device"], "Cpu");
    assert_eq!(v["failed"], serde_json::json!([]));
    let checks = v["checks"].as_array().unwrap();
    for name in
        ["same steps: loss", "autocast bf16 vs fp32", "split-BN node: features", "pinned staging", "process group of 1"]
    {
        let c = checks.iter().find(|c| c["check"].as_str().unwrap().starts_with(name));
        let c = c.unwrap_or_else(|| panic!("no check {name}: {stdout}"));
        assert_eq!(c["ok"], true, "{c}");
        assert!(c["measure"].as_f64().unwrap() <= c["bound"].as_f64().unwrap(), "{c}");
    }
}

/// A checkpoint from before machines were recorded (tests/fixtures/checkpoint-b3f2962, 1 epoch),
/// extended here by one epoch: its summary lists the earlier steps' machine as not recorded, then
/// this one, so the run does not pass for a run of one class.
#[test]
fn an_old_checkpoint_extended_lists_its_earlier_machine_as_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    std::fs::copy("tests/fixtures/checkpoint-b3f2962/last.safetensors", run.join("checkpoints/last.safetensors"))
        .unwrap();
    let root = format!("data.root=\"{}/crates/unmix-data/tests/fixtures/fashion-mnist\"", env!("CARGO_MANIFEST_DIR"));
    let (code, stdout, err) = unmix(&[
        "pretrain",
        "--resume",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
        "--set",
        "train.epochs=2",
        "--set",
        &root,
    ]);
    assert_eq!(code, 0, "{stdout}{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["epochs"], 2);
    assert_eq!(s["machines"][0], "machine not recorded (a checkpoint of an earlier version)", "{s}");
    assert_eq!(s["machines"][1], s["machine"], "{s}");
}

/// A finished run of another machine class with a run still to train here is refused before
/// anything trains, naming the run and the way on; with every run finished the table is written
/// and lists both classes; --allow-mixed-machines trains the missing run.
#[test]
fn compare_refuses_to_train_beside_a_finished_run_of_another_class() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut args =
        vec!["compare", "--config", "configs/fmnist-moco-unmix.toml", "--seeds", "1", "--quiet", "--out", out];
    args.extend_from_slice(TINY);
    let (code, _, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");
    let summary = dir.path().join("base-seed0").join("summary.json");
    let mut s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    s["machine"] = "Other CPU, 2 cores (family 1 model 1); avx2 fma".into();
    std::fs::write(&summary, serde_json::to_string(&s).unwrap()).unwrap();
    let (code, _, err) = unmix(&args);
    assert_eq!(code, 0, "all runs finished: nothing trains, the table is written ({err})");
    assert!(std::fs::read_to_string(dir.path().join("compare.md")).unwrap().contains("span 2 machine classes"));

    std::fs::remove_dir_all(dir.path().join("unmix-seed0")).unwrap();
    let (code, stdout, err) = unmix(&args);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        err.contains("base-seed0")
            && err.contains("Other CPU, 2 cores; avx2")
            && err.contains("--allow-mixed-machines"),
        "{err}"
    );
    assert!(!err.contains("   "), "one sentence, no runs of spaces: {err}");
    assert!(!stdout.contains("== "), "refused before any run: {stdout}");
    assert!(!dir.path().join("unmix-seed0").exists());

    args.push("--allow-mixed-machines");
    let (code, stdout, err) = unmix(&args);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("span 2 machine classes") && stdout.contains("(base seed 0)"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("compare.json")).unwrap()).unwrap();
    assert_eq!(v["machine_classes"][0]["runs"], serde_json::json!(["base seed 0"]));
    assert_eq!(v["arms"][0]["runs"][0]["class"], "Other CPU, 2 cores; avx2");
}
