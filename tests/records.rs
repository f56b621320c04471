//! Issue 33: one writer per run folder, records that always agree with the checkpoint (a kill at
//! every write point of a run, then --resume, gives the records of an uninterrupted run, as
//! TensorBoard's own reader sees them too), a resume that keeps the run's meaning, a second
//! Ctrl-C that ends the process at once, and nonsense caught where it enters.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

/// The uninterrupted tiny run (kNN every epoch), trained once for every test of this file.
fn whole() -> &'static Path {
    static WHOLE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    WHOLE
        .get_or_init(|| {
            let tmp = tempfile::tempdir().unwrap();
            ok(&pretrain(&tmp.path().join("run"), &["eval.knn_every=1"], &[]));
            tmp
        })
        .path()
}

/// A record without the fields that measure time (they differ between any two runs).
fn untimed(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        for k in
            ["images_per_second", "epoch_seconds", "data_wait_seconds", "train_seconds", "wall_seconds", "peak_rss_mib"]
        {
            m.remove(k);
        }
    }
    v
}

/// metrics.csv without its timing columns.
fn csv_untimed(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let timed = ["images_per_second", "epoch_seconds", "data_wait_seconds"];
    text.lines()
        .map(|l| l.split(',').zip(&header).filter(|(_, h)| !timed.contains(h)).map(|(c, _)| c.to_string()).collect())
        .collect()
}

/// Every record of `dir` equals the uninterrupted run's, timing aside; TensorBoard sees each
/// step once, with the same values.
fn assert_same_records(dir: &Path, whole: &Path, case: &str) {
    assert_eq!(lines(&dir.join("steps.jsonl")), lines(&whole.join("steps.jsonl")), "{case}: steps.jsonl");
    let epochs = |d: &Path| lines(&d.join("metrics.jsonl")).into_iter().map(untimed).collect::<Vec<_>>();
    assert_eq!(epochs(dir), epochs(whole), "{case}: metrics.jsonl");
    assert_eq!(csv_untimed(dir), csv_untimed(whole), "{case}: metrics.csv");
    let summary =
        |d: &Path| untimed(serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap());
    assert_eq!(summary(dir), summary(whole), "{case}: summary.json");
    assert!(dir.join("report.md").is_file(), "{case}: report.md");
    let (got, want) = (tensorboard_scalars(dir), tensorboard_scalars(whole));
    assert_eq!(
        got.as_object().unwrap().keys().collect::<Vec<_>>(),
        want.as_object().unwrap().keys().collect::<Vec<_>>(),
        "{case}"
    );
    for (tag, w) in want.as_object().unwrap() {
        let g = got[tag].as_array().unwrap();
        let steps = |v: &[Value]| v.iter().map(|p| p[0].as_u64().unwrap()).collect::<Vec<_>>();
        assert_eq!(steps(g), steps(w.as_array().unwrap()), "{case}: TensorBoard {tag}: each step once");
        if tag != "epoch/images_per_second" {
            assert_eq!(g, w.as_array().unwrap(), "{case}: TensorBoard {tag}");
        }
    }
    let (mut a, _) = unmix::checkpoint::load(&ckpt(dir)).unwrap();
    let (mut b, _) = unmix::checkpoint::load(&ckpt(whole)).unwrap();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a.len(), b.len());
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert!(x.equal(y), "{case}: tensor {n} differs from the uninterrupted run's");
    }
}

#[test]
fn a_kill_at_every_write_point_is_repaired_by_resume_to_the_uninterrupted_records() {
    let whole = whole().join("run");
    // Each write point of a 2-epoch run of 8 steps per epoch (a step record every step), at its
    // first occurrence and where a second one matters: the last step of epoch 1 (just before
    // its checkpoint), inside epoch 2, and epoch 2's end (the run's last checkpoint).
    let cases: &[(&str, usize)] = &[
        ("config", 1),
        ("steps", 1),
        ("steps", 8),
        ("steps", 12),
        ("step-events", 1),
        ("step-events", 16),
        ("checkpoint", 1),
        ("checkpoint", 2),
        ("events", 1),
        ("events", 2),
        ("metrics", 1),
        ("metrics", 2),
        ("csv", 1),
        ("csv", 2),
        ("summary", 1),
        ("report", 1),
    ];
    for point in unmix::fault::POINTS {
        assert!(cases.iter().any(|(p, _)| *p == point), "write point {point} is not tested");
    }
    let tmp = tempfile::tempdir().unwrap();
    for &(point, n) in cases {
        let case = format!("{point}:{n}");
        let dir = tmp.path().join(case.replace(':', "-"));
        let o = pretrain_env(&dir, &["eval.knn_every=1"], &[], &[("UNMIX_FAULT", &case)]);
        assert_eq!(o.status.signal(), Some(9), "{case}: the fault hook did not kill the run: {:?}", text(&o));
        // The way back a user is told: --resume, or without a checkpoint a new start (--force).
        let again =
            if ckpt(&dir).exists() { resume(&dir, &[]) } else { pretrain(&dir, &["eval.knn_every=1"], &["--force"]) };
        ok(&again);
        assert_same_records(&dir, &whole, &case);
        // Resuming the repaired run changes nothing more.
        let o = resume(&dir, &[]);
        ok(&o);
        assert!(text(&o).0.contains("nothing to do"), "{case}: {}", text(&o).0);
    }
}

#[test]
fn a_second_writer_of_a_run_folder_is_refused_naming_the_first_and_a_kill_frees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut first = spawn_pretrain(&dir, &["train.epochs=200"]);
    // Once the first run holds a checkpoint, every kind of second writer is refused at once.
    wait_for(&mut first, "the first checkpoint", || ckpt(&dir).exists() && line_count(&dir.join("metrics.jsonl")) >= 1);
    let holder = format!("pid {}", first.id());
    for (what, o) in [
        ("a new run", pretrain(&dir, &["train.epochs=200"], &[])),
        ("--force", pretrain(&dir, &["train.epochs=200"], &["--force"])),
        ("--resume", resume(&dir, &[])),
    ] {
        let err = refused(&o);
        assert!(err.contains("in use by another unmix process") && err.contains(&holder), "{what}: {err}");
    }
    assert!(!std::fs::read_dir(tmp.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".old-")));
    // A kill releases the lock: the run resumes from its checkpoint.
    first.kill().unwrap();
    first.wait().unwrap();
    let (_, meta) = unmix::checkpoint::load(&ckpt(&dir)).unwrap();
    let longer = format!("train.epochs={}", meta.epoch + 1);
    let o = resume(&dir, &[&longer]);
    ok(&o);
    let epochs: Vec<u64> = lines(&dir.join("metrics.jsonl")).iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, (1..=meta.epoch as u64 + 1).collect::<Vec<_>>(), "one line per epoch");
}

#[test]
fn resume_refuses_what_changes_a_step_and_applies_allowed_edits_of_config_toml() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &[], &["--until-epoch", "1"]));
    let before = std::fs::read(ckpt(&dir)).unwrap();
    let err = refused(&resume(&dir, &["data.limit=128"]));
    assert!(err.contains("data.limit (was 256, now 128)") && err.contains("--set"), "{err}");
    let err = refused(&resume(&dir, &["train.epochs=0"]));
    assert!(err.contains("train.epochs"), "{err}");
    // A hand edit of the run's config.toml: refused when it changes a step...
    let config = dir.join("config.toml");
    let saved = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, saved.replace("limit = 256", "limit = 128")).unwrap();
    let err = refused(&resume(&dir, &[]));
    assert!(err.contains("config.toml was edited") && err.contains("data.limit (was 256, now 128)"), "{err}");
    assert_eq!(std::fs::read(ckpt(&dir)).unwrap(), before, "a refused resume leaves the checkpoint");
    // ...applied, and said, when it changes what a resume may change.
    std::fs::write(&config, saved.replace("log_every = 1", "log_every = 2")).unwrap();
    let o = resume(&dir, &[]);
    ok(&o);
    assert!(text(&o).0.contains("train.log_every = 2 (was 1)"), "{}", text(&o).0);
    assert!(std::fs::read_to_string(&config).unwrap().contains("log_every = 2"));
    let steps: Vec<u64> = lines(&dir.join("steps.jsonl")).iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16], "epoch 2 logs every second step");
    let help = text(&run(&["pretrain", "--help"])).0;
    assert!(help.contains("train.epochs") && help.contains("config.toml"), "{help}");
}

#[test]
fn a_second_ctrl_c_stops_at_once_with_status_130_and_no_backtrace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut child = spawn_pretrain(&dir, &["train.epochs=200"]);
    wait_for(&mut child, "three steps", || line_count(&dir.join("steps.jsonl")) >= 3);
    for _ in 0..2 {
        // SAFETY: signals the child this test spawned and still owns.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("second interrupt") && !err.contains("panicked") && !err.contains("backtrace"), "{err}");
    if ckpt(&dir).exists() {
        unmix::checkpoint::load(&ckpt(&dir)).expect("the last checkpoint is intact");
    }
}

#[test]
fn nonsense_values_are_refused_naming_their_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let err = refused(&pretrain(&tmp.path().join("mean"), &["data.mean=[1e30]"], &[]));
    assert!(err.contains("data.mean") && err.contains("0-1 pixel scale"), "{err}");
    assert!(!ckpt(&tmp.path().join("mean")).exists());
    for (set, key) in
        [("train.weight_decay=1e30", "train.weight_decay = 1e30"), ("method.temperature=1e-30", "method.temperature")]
    {
        let dir = tmp.path().join(key.split(' ').next().unwrap());
        let err = refused(&pretrain(&dir, &[set], &[]));
        assert!(err.contains(key) && err.contains("no checkpoint had been written yet"), "{set}: {err}");
        assert!(!err.contains("earlier, intact checkpoint"), "{err}");
    }
}

/// A labeled folder `root/SPLIT/CLASS/i.png` of small grey squares, one shade per class.
fn labeled_folder(root: &Path, split: &str, classes: &[&str]) {
    for (c, name) in classes.iter().enumerate() {
        let dir = root.join(split).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..3u8 {
            let shade = 40 * c as u8 + 10 * i;
            image::GrayImage::from_pixel(20, 20, image::Luma([shade])).save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn an_eval_root_whose_splits_hold_different_classes_is_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let labeled = tmp.path().join("labeled");
    labeled_folder(&labeled, "train", &["cat", "dog"]);
    labeled_folder(&labeled, "val", &["cat", "fox"]);
    let set = format!("data.eval_root=\"{}\"", labeled.display());
    let photos = root().join("data/photos").display().to_string();
    let err = refused(&run(&[
        "knn",
        "--raw-pixels",
        "--config",
        "configs/photos-mocov2.toml",
        "--data",
        &photos,
        "--set",
        &set,
    ]));
    assert!(err.contains("different classes") && err.contains("[dog]") && err.contains("[fox]"), "{err}");
}

#[test]
fn messages_blame_what_the_user_typed_and_outputs_leave_run_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    // A config file without data.dataset, run with --data: the file is named, not the flag.
    let cfg = tmp.path().join("no-dataset.toml");
    let template = std::fs::read_to_string(root().join("configs/fmnist-moco-unmix.toml")).unwrap();
    std::fs::write(&cfg, template.replace("dataset = \"fashion-mnist\"", "")).unwrap();
    let f = fixture().display().to_string();
    let err = refused(&run(&[
        "pretrain",
        "--config",
        cfg.to_str().unwrap(),
        "--data",
        &f,
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]));
    assert!(err.contains("no-dataset.toml") && err.contains("dataset") && !err.contains("--set"), "{err}");
    // A flag's bad value names the flag.
    let dir = tmp.path().join("a run");
    ok(&pretrain(&dir, &[], &["--until-epoch", "1"]));
    let c = ckpt(&dir).display().to_string();
    let err = refused(&run(&["knn", "--checkpoint", &c, "--t", "nan"]));
    assert!(err.contains("--t NaN") && !err.contains("--set"), "{err}");
    // The printed resume command quotes a path with a space.
    let mut a = tiny(&[]);
    a.extend(["--out".to_string(), tmp.path().join("b run").display().to_string(), "--until-epoch".into(), "1".into()]);
    let o = std::process::Command::new(bin()).args(&a).current_dir(root()).output().unwrap();
    ok(&o);
    let quoted = format!("--out '{}' --resume", tmp.path().join("b run").display());
    assert!(text(&o).0.contains(&quoted), "{}", text(&o).0);
    // export and embed never write over a run's own files; an existing file only with --force.
    let config = dir.join("config.toml");
    let metrics = dir.join("metrics.jsonl").display().to_string();
    let before = std::fs::read(&config).unwrap();
    for args in [
        vec!["export", "--checkpoint", &c, "--out", config.to_str().unwrap()],
        vec!["embed", "--checkpoint", &c, "--out", &metrics],
    ] {
        let err = refused(&run(&args));
        assert!(err.contains("belongs to the run folder"), "{err}");
    }
    assert_eq!(std::fs::read(&config).unwrap(), before);
    let other = tmp.path().join("backbone.safetensors");
    std::fs::write(&other, b"mine").unwrap();
    let err = refused(&run(&["export", "--checkpoint", &c, "--out", other.to_str().unwrap()]));
    assert!(err.contains("--force"), "{err}");
    ok(&run(&["export", "--checkpoint", &c, "--out", other.to_str().unwrap(), "--force"]));
}

#[test]
fn a_finished_run_extends_to_more_epochs_with_continuous_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(&pretrain(&dir, &[], &[]));
    let err = refused(&resume(&dir, &["train.epochs=1"]));
    assert!(err.contains("already trained 2 epochs"), "{err}");
    let o = resume(&dir, &["train.epochs=3"]);
    ok(&o);
    let out = text(&o).0;
    assert!(out.contains("extending the run from 2 epochs to 3 epochs") && out.contains("from step 17 on"), "{out}");
    let epochs: Vec<u64> = lines(&dir.join("metrics.jsonl")).iter().map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, vec![1, 2, 3]);
    let steps: Vec<u64> = lines(&dir.join("steps.jsonl")).iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, (1..=24).collect::<Vec<_>>(), "no gap, no duplicate");
    let tb = tensorboard_scalars(&dir);
    let tb_steps: Vec<u64> = tb["train/loss"].as_array().unwrap().iter().map(|p| p[0].as_u64().unwrap()).collect();
    assert_eq!(tb_steps, steps, "TensorBoard: each step once");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["epochs"], 3);
    assert!(std::fs::read_to_string(dir.join("config.toml")).unwrap().contains("epochs = 3"));
}
