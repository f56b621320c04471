//! End-to-end runs on real data: the Fashion-MNIST fixture (the first 1024 training and 512 test
//! images of the real dataset, in its real gzipped IDX format).

use std::path::{Path, PathBuf};
use unmix::checkpoint::{self, RUN_CHECKPOINT as CHECKPOINT};
use unmix::config::Config;
use unmix::train::RunOptions;

/// Pretrains and returns rank 0's summary as JSON (what summary.json holds).
fn pretrain(cfg: &Config, opts: &RunOptions) -> anyhow::Result<serde_json::Value> {
    match unmix::train::pretrain(cfg, opts)? {
        unmix::train::Finished::Main(s) => Ok(serde_json::to_value(s)?),
        other => anyhow::bail!("not a finished run: {other:?}"),
    }
}

/// Runs seed libtorch's process-wide generator, so runs in one test process must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/unmix-data/tests/fixtures/fashion-mnist")
}

/// The fmnist protocol shrunk to test size (narrow net, small batch and queue).
fn small_config(extra: &[&str]) -> Config {
    let mut set: Vec<String> = vec![
        format!("data.root=\"{}\"", fixture().display()),
        "data.workers=2".into(),
        "model.widths=[8, 8, 16, 16]".into(),
        "train.batch_size=64".into(),
        "method.queue=256".into(),
        "train.epochs=2".into(),
        "train.log_every=1".into(),
        "eval.knn_every=1".into(),
        "eval.knn_k=20".into(),
    ];
    set.extend(extra.iter().map(|s| s.to_string()));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/fmnist-moco-unmix.toml");
    Config::load(&path, &set).unwrap()
}

fn step_losses(dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(dir.join("steps.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn interrupted_and_resumed_run_matches_uninterrupted_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = small_config(&[]);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let full = pretrain(&cfg, &RunOptions { out: a.path().into(), ..Default::default() }).unwrap();
    // Interrupt after epoch 1, then resume from the saved run folder and config.
    pretrain(&cfg, &RunOptions { out: b.path().into(), until_epoch: Some(1), ..Default::default() }).unwrap();
    let meta = checkpoint::load(&b.path().join(CHECKPOINT)).unwrap().1;
    assert_eq!(meta.epoch, 1);
    let saved = Config::load(&b.path().join("config.toml"), &[]).unwrap();
    assert_eq!(saved, cfg, "the resolved config is saved with the run");
    let resumed = pretrain(&saved, &RunOptions { out: b.path().into(), resume: true, ..Default::default() }).unwrap();

    let la = step_losses(a.path());
    let lb = step_losses(b.path());
    assert_eq!(la.len(), 32, "16 steps per epoch, logged every step");
    assert_eq!(la.len(), lb.len());
    for ((sa, xa), (sb, xb)) in la.iter().zip(&lb) {
        assert_eq!(sa, sb);
        assert!((xa - xb).abs() <= 1e-5 * xa.abs().max(1.0), "step {sa}: {xa} vs {xb}");
    }
    // Losses really change over training (not a constant stub).
    assert!(la.iter().any(|(_, l)| (l - la[0].1).abs() > 1e-3));
    let ka = full["knn"]["top1"].as_f64().unwrap();
    let kb = resumed["knn"]["top1"].as_f64().unwrap();
    assert!((ka - kb).abs() < 1e-9, "kNN after resume {kb} vs {ka}");
    assert!(ka > 10.0, "kNN top-1 {ka} should beat chance on real data");
    // metrics.jsonl has one line per epoch with kNN.
    let metrics = std::fs::read_to_string(b.path().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    assert!(metrics.contains("knn_top1"));
    // The online probe is trained alongside, checkpointed, and resumes exactly too.
    let pa = full["online_probe"]["top1"].as_f64().unwrap();
    let pb = resumed["online_probe"]["top1"].as_f64().unwrap();
    assert!((pa - pb).abs() < 1e-9, "online probe after resume {pb} vs {pa}");
    assert!(pa > 10.0, "online probe {pa}");
    assert!(b.path().join("summary.json").exists());
    // The report of the resumed run: plots and a markdown summary with the numbers.
    let md = std::fs::read_to_string(unmix::report::write_report(b.path()).unwrap()).unwrap();
    for png in ["loss.png", "lr.png", "accuracy.png", "embeddings.png"] {
        assert!(b.path().join(png).exists(), "{png}");
    }
    assert!(md.contains(&format!("{kb:.2}%")), "{md}");
    assert!(md.contains("weighted kNN (cosine, k 20"), "{md}");
}

#[test]
fn moco_trains_with_mixing_groups_and_resumes_exactly() {
    // unmix.groups = 4 on batches of 64 (the ImageNet recipe's per-GPU mixing, scaled down): a
    // run trains, its losses differ from whole-batch mixing on the same seed, and an interrupted
    // run resumes to the same losses (each group's draw comes from the step's own stream).
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = small_config(&["unmix.groups=4", "train.epochs=1", "eval.knn_every=0"]);
    let whole = small_config(&["train.epochs=1", "eval.knn_every=0"]);
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    pretrain(&cfg, &RunOptions { out: a.path().into(), ..Default::default() }).unwrap();
    pretrain(&whole, &RunOptions { out: b.path().into(), ..Default::default() }).unwrap();
    let (grouped, one) = (step_losses(a.path()), step_losses(b.path()));
    assert_eq!(grouped.len(), 16);
    assert!(grouped.iter().all(|(_, l)| l.is_finite()), "{grouped:?}");
    assert!(grouped.iter().zip(&one).skip(1).any(|(g, o)| (g.1 - o.1).abs() > 1e-4), "{grouped:?} vs {one:?}");
    let two = Config::load(&a.path().join("config.toml"), &["train.epochs=2".into()]).unwrap();
    pretrain(&two, &RunOptions { out: c.path().into(), until_epoch: Some(1), ..Default::default() }).unwrap();
    pretrain(&two, &RunOptions { out: c.path().into(), resume: true, ..Default::default() }).unwrap();
    let full = tempfile::tempdir().unwrap();
    pretrain(&two, &RunOptions { out: full.path().into(), ..Default::default() }).unwrap();
    assert_eq!(step_losses(c.path()), step_losses(full.path()));
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_checkpoint() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = small_config(&["unmix.enabled=false"]);
    let dir = tempfile::tempdir().unwrap();
    pretrain(&cfg, &RunOptions { out: dir.path().into(), until_epoch: Some(1), ..Default::default() }).unwrap();
    // Absurd (finite) weights in the checkpoint make the loss non-finite in epoch 2.
    let path = dir.path().join(CHECKPOINT);
    let (mut tensors, meta) = checkpoint::load(&path).unwrap();
    let (_, w) = tensors.iter_mut().find(|(n, t)| n.contains("conv") && t.is_floating_point()).unwrap();
    let _ = w.fill_(1e30);
    checkpoint::save(&path, &tensors, &meta).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = pretrain(&cfg, &RunOptions { out: dir.path().into(), resume: true, ..Default::default() }).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("loss became") || msg.contains("NaN or infinite values"), "{msg}");
    assert!(msg.contains("last good checkpoint"), "{msg}");
    let after = std::fs::read(dir.path().join(CHECKPOINT)).unwrap();
    assert_eq!(before, after, "the finished checkpoint is untouched");
    assert_eq!(checkpoint::load(&dir.path().join(CHECKPOINT)).unwrap().1.epoch, 1);
}

#[test]
fn every_shipped_config_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let cfg = Config::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert!(cfg.unmix.enabled, "{}: shipped configs are the +Un-Mix runs", path.display());
        n += 1;
    }
    assert!(n >= 16, "found {n} configs");
}

#[test]
fn every_fmnist_method_trains_with_and_without_unmix() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for method in ["moco", "simclr", "byol", "swav", "simsiam", "barlow", "vicreg", "wmse"] {
        for unmix in [true, false] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/fmnist-{method}-unmix.toml"));
            let mut set: Vec<String> = vec![
                format!("data.root=\"{}\"", fixture().display()),
                "data.limit=256".into(),
                "model.widths=[8, 8, 16, 16]".into(),
                "train.batch_size=64".into(),
                "train.epochs=1".into(),
                "train.log_every=1".into(),
                "eval.knn_k=20".into(),
                format!("unmix.enabled={unmix}"),
            ];
            if method == "moco" {
                set.push("method.queue=256".into());
            } else {
                set.push("train.warmup_epochs=0.5".into());
            }
            if method == "wmse" {
                set.extend(["method.dim=16".into(), "method.w_size=32".into()]);
            }
            let cfg = Config::load(&path, &set).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let s = pretrain(&cfg, &RunOptions { out: dir.path().into(), ..Default::default() })
                .unwrap_or_else(|e| panic!("{method} unmix={unmix}: {e:#}"));
            let losses = step_losses(dir.path());
            assert_eq!(losses.len(), 4, "{method}");
            assert!(losses.iter().all(|(_, l)| l.is_finite()), "{method}: {losses:?}");
            assert!(s["knn"]["top1"].as_f64().unwrap() > 0.0);
        }
    }
}

#[test]
fn swav_multi_crop_with_queue_trains_and_checkpoints_the_queue() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/fmnist-swav-unmix.toml");
    let set: Vec<String> = vec![
        format!("data.root=\"{}\"", fixture().display()),
        "data.limit=256".into(),
        "model.widths=[8, 8, 16, 16]".into(),
        "train.batch_size=64".into(),
        "train.epochs=2".into(),
        "train.warmup_epochs=0.5".into(),
        "train.log_every=1".into(),
        "eval.knn_k=20".into(),
        "augment.small_crops=3".into(),
        "augment.small={crop_size = 12, crop_scale = [0.05, 0.3]}".into(),
        "method.swav_queue=128".into(),
        "method.swav_queue_start_epoch=2".into(),
    ];
    let cfg = Config::load(&path, &set).unwrap();
    let dir = tempfile::tempdir().unwrap();
    pretrain(&cfg, &RunOptions { out: dir.path().into(), until_epoch: Some(1), ..Default::default() }).unwrap();
    let (t, _) = checkpoint::load(&dir.path().join(CHECKPOINT)).unwrap();
    assert!(t.iter().all(|(n, _)| n != "swav.queue"), "no queue before its epoch");
    pretrain(&cfg, &RunOptions { out: dir.path().into(), resume: true, ..Default::default() }).unwrap();
    let (t, _) = checkpoint::load(&dir.path().join(CHECKPOINT)).unwrap();
    let q = &t.iter().find(|(n, _)| n == "swav.queue").expect("queue checkpointed").1;
    assert_eq!(q.size(), vec![2, 128, 128]);
    // Four steps of the second epoch filled it: every row is a unit projection.
    let norms = q.norm_scalaropt_dim(2, [2i64].as_slice(), false);
    assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-4);
    let losses = step_losses(dir.path());
    assert_eq!(losses.len(), 8);
    assert!(losses.iter().all(|(_, l)| l.is_finite()), "{losses:?}");
    // SwAV's warmup as its scripts' np.linspace(0, 0.6, 2): the first step at lr 0 (a ramp of
    // (i + 1) / W would start at 0.3), the second at 0.6, and the cosine then starts at 0.6.
    let lrs: Vec<f64> = std::fs::read_to_string(dir.path().join("steps.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64().unwrap())
        .collect();
    assert_eq!((lrs[0], lrs[1], lrs[2]), (0.0, 0.6, 0.6), "{lrs:?}");
}

fn data_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/unmix-data/tests/fixtures").join(name)
}

#[test]
fn pretrains_end_to_end_on_folders_of_real_photos() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/imagenet-mocov2-unmix.toml");
    // A folder of real photos (JPEG, PNG, grey, CMYK, alpha) and the Tiny ImageNet layout.
    for (dataset, root) in [("image-folder", "image-folder"), ("tiny-imagenet", "tiny-imagenet-200")] {
        let set: Vec<String> = vec![
            format!("data.dataset=\"{dataset}\""),
            format!("data.root=\"{}\"", data_fixture(root).display()),
            "data.eval_resize=40".into(),
            "data.eval_crop=32".into(),
            "augment.view1.crop_size=32".into(),
            "model.arch=\"resnet18\"".into(),
            "model.widths=[8, 8, 16, 16]".into(),
            "method.mlp_hidden=32".into(),
            "method.queue=16".into(),
            "train.batch_size=4".into(),
            "model.bn_splits=2".into(),
            "unmix.groups=2".into(),
            "train.epochs=2".into(),
            "train.log_every=1".into(),
            "eval.knn_k=3".into(),
            "eval.batch_size=4".into(),
        ];
        let cfg = Config::load(&path, &set).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = pretrain(&cfg, &RunOptions { out: dir.path().into(), ..Default::default() })
            .unwrap_or_else(|e| panic!("{dataset}: {e:#}"));
        let losses = step_losses(dir.path());
        assert!(!losses.is_empty() && losses.iter().all(|(_, l)| l.is_finite()), "{dataset}: {losses:?}");
        assert!(s["knn"]["top1"].as_f64().is_some(), "{dataset}");
    }
}

#[test]
fn stl10_pretrains_on_train_plus_unlabeled() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cifar10-moco-unmix.toml");
    let set: Vec<String> = vec![
        "data.dataset=\"stl10\"".into(),
        format!("data.root=\"{}\"", data_fixture("stl10_binary").display()),
        "data.workers=0".into(),
        "augment.view1.crop_size=32".into(),
        "model.widths=[8, 8, 16, 16]".into(),
        "model.bn_splits=1".into(),
        "method.queue=40".into(),
        "train.batch_size=5".into(),
        "train.epochs=1".into(),
        "train.log_every=1".into(),
        "eval.knn_k=2".into(),
    ];
    let cfg = Config::load(&path, &set).unwrap();
    let dir = tempfile::tempdir().unwrap();
    pretrain(&cfg, &RunOptions { out: dir.path().into(), ..Default::default() }).unwrap();
    // 3 train + 2 unlabeled images = one batch of 5.
    assert_eq!(step_losses(dir.path()).len(), 1);
}

#[test]
fn linear_probe_separates_real_linearly_separable_features() {
    // Its classifier's init draws from libtorch's global generator: keep it out of the runs' way.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Raw pixels of two Fashion-MNIST classes (trouser vs bag) from the real fixture: linearly
    // separable, so the probe must fit them (train) and generalize (test) almost perfectly.
    use tch::Tensor;
    use unmix::eval::linear::{probe, ProbeConfig};
    let pick = |train: bool| {
        let set = unmix_data::idx::load_mnist_like(&fixture(), train).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..set.len() {
            let l = set.labels[i];
            if l == 1 || l == 8 {
                x.extend(set.image(i).data.iter().map(|&v| v as f32 / 255.0));
                y.push(if l == 1 { 0i64 } else { 1 });
            }
        }
        let n = y.len() as i64;
        (Tensor::from_slice(&x).view([n, 784]), Tensor::from_slice(&y))
    };
    let (xt, yt) = pick(true);
    let (xs, ys) = pick(false);
    assert!(xt.size()[0] > 100 && xs.size()[0] > 50);
    let cfg = ProbeConfig {
        epochs: 30,
        lr: 0.1,
        batch_size: 32,
        momentum: 0.9,
        weight_decay: 0.0,
        milestones: vec![],
        seed: 0,
    };
    let r = probe(&xt, &yt, &xs, &ys, 2, &cfg);
    assert!(r.train_top1 > 99.5, "{r:?}");
    assert!(r.top1 > 98.0, "{r:?}");
}

#[test]
fn bf16_training_tracks_fp32() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut first = Vec::new();
    for precision in ["fp32", "bf16"] {
        let cfg = small_config(&["train.epochs=1", "data.limit=256", &format!("train.precision=\"{precision}\"")]);
        let dir = tempfile::tempdir().unwrap();
        let s = pretrain(&cfg, &RunOptions { out: dir.path().into(), ..Default::default() }).unwrap();
        let losses = step_losses(dir.path());
        assert!(losses.iter().all(|(_, l)| l.is_finite()), "{precision}: {losses:?}");
        assert!(s["knn"]["top1"].as_f64().unwrap() > 20.0, "{precision}: {s}");
        first.push(losses[0].1);
    }
    // Same weights, data and draws: the first loss differs only by bf16 rounding, so it is close
    // to fp32's but not equal (autocast really ran the convolutions in bf16).
    let rel = (first[1] - first[0]).abs() / first[0].abs();
    assert!(rel > 0.0 && rel < 0.02, "fp32 {} vs bf16 {}", first[0], first[1]);
}

#[test]
fn papers_linear_evaluation_trains_on_augmented_crops_through_a_frozen_backbone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use std::cell::RefCell;
    use tch::{Kind, Tensor};
    use unmix::eval::protocol::{train_and_evaluate, train_recipe, Protocol, ProtocolConfig};
    // A tiny run: one epoch of the shrunk protocol, its checkpoint loaded for evaluation.
    // Pretrained in float64, so the backbone (and the accuracy bound below) is the same on every
    // CPU: in float32, one epoch amplifies the kernels' rounding into another network (this test
    // reached 45 % on an AVX2 EPYC but 22 % on an AMX Xeon).
    let cfg = small_config(&["train.epochs=1", "eval.online_probe=false", "train.precision=\"fp64\""]);
    let dir = tempfile::tempdir().unwrap();
    pretrain(&cfg, &RunOptions { out: dir.path().to_path_buf(), ..Default::default() }).unwrap();
    let (tensors, _) = checkpoint::load(&dir.path().join(CHECKPOINT)).unwrap();
    let tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| if t.kind() == Kind::Double { (n, t.to_kind(Kind::Float)) } else { (n, t) })
        .collect();
    let cfg = Config::load(&dir.path().join("config.toml"), &["train.precision=\"fp32\"".into()]).unwrap();
    let device = unmix::build::runtime(&cfg).unwrap();
    let mut method = unmix::build::method(&cfg, device, 1);
    method.load_state(&tensors).unwrap();
    let method = method;
    let snapshot = || -> Vec<(String, Tensor)> { method.state().into_iter().map(|(n, t)| (n, t.copy())).collect() };
    let before = snapshot();
    let train = unmix::data::load_split(&cfg, true).unwrap();
    let test = unmix::data::load_split(&cfg, false).unwrap();
    let embed = |x: &Tensor| method.embed(x, unmix::method::Features::Backbone);
    let test_x =
        unmix::eval::knn::extract(&test.data, &unmix::data::eval_recipes(&cfg), 256, 1, device, false, &embed).unwrap();
    let test_y = unmix::eval::linear::labels_tensor(&test.labels, device);
    let mut pc = ProtocolConfig::new(Protocol::Swav);
    pc.epochs = 8;
    // Per epoch: the sum of every input pixel the classifier's features came from (float64).
    let run = |pc: &ProtocolConfig| {
        let current = RefCell::new(0.0f64);
        let mut epochs = Vec::new();
        let recorder = |x: &Tensor| {
            assert_eq!(&x.size()[1..], &[1, 28, 28]);
            *current.borrow_mut() += x.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
            embed(x)
        };
        let mut on_epoch = |_: usize, _: f64, _: f64, _: f64| epochs.push(current.replace(0.0));
        let recipe = train_recipe(pc, (28, 28), cfg.data.mean.clone(), cfg.data.std.clone());
        let r = train_and_evaluate(&train.data, recipe, &test_x, &test_y, 10, pc, 1, device, &recorder, &mut on_epoch)
            .unwrap();
        (r, epochs)
    };
    let (r, sums) = run(&pc);
    // New random crops and flips every epoch: the same 1024 images sum to other totals.
    for e in 1..sums.len() {
        let rel = ((sums[e] - sums[0]) / sums[0]).abs();
        assert!(rel > 1e-4, "epoch {e} saw the same pixels as epoch 0 (relative difference {rel:e})");
    }
    assert_eq!(r.per_epoch_top1.len(), 8);
    assert!(r.best_top1 >= r.last_top1 && r.best_top1 == r.per_epoch_top1[r.best_epoch - 1], "{r:?}");
    // Best of 8 epochs from the float64 backbone: 37.1 % on an AMX Xeon, 33.0 % with its AVX2
    // kernels forced (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2): the classifier still
    // trains in float32 at the SwAV protocol's lr on 1024 images, which moves it a few points.
    assert!(r.best_top1 > 25.0, "far above chance (10 %): {r:?}");
    // Control: with whole-image crops and no flip, every epoch sees the same pixels (up to the
    // order of float64 additions), so the check above can fail.
    let still = ProtocolConfig { crop_scale: (1.0, 1.0), hflip_p: 0.0, epochs: 2, ..pc.clone() };
    let (_, sums) = run(&still);
    for e in 1..sums.len() {
        assert!(((sums[e] - sums[0]) / sums[0]).abs() < 1e-9, "{sums:?}");
    }
    // The backbone stayed frozen: every weight and batch-norm statistic is unchanged, bit for bit.
    let after = snapshot();
    assert_eq!(before.len(), after.len());
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        assert!(a.equal(b), "{name} changed during the linear evaluation");
    }
}

/// Every key of `new` (a TOML table) with its value in `old`.
fn keys_with_values(t: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in t {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(sub) => keys_with_values(sub, &key, out),
            _ => out.push((key, v.clone())),
        }
    }
}

/// Configs that did not exist at commit b3f2962.
const ADDED_AFTER_B3F2962: &[&str] = &["photos-mocov2.toml"];

/// Keys added after b3f2962, with the value that reproduces the runs resolved then.
const KEYS_ADDED_AFTER_B3F2962: &[(&str, &str)] = &[
    ("train.warmup_shape", "\"ramp\""),
    ("train.warmup_start_lr", "0.0"),
    ("unmix.groups", "1"),
    ("unmix.one_pass", "false"),
];

/// Deliberate changes of shipped runs since b3f2962 (config, key, value now): SwAV warms up as
/// its scripts' np.linspace from lr 0; ImageNet MoCo v2 mixes in the authors' 8 per-GPU groups.
const CHANGED_AFTER_B3F2962: &[(&str, &str, &str)] = &[
    ("imagenet-mocov2-unmix.toml", "unmix.groups", "8"),
    ("fmnist-swav-unmix.toml", "train.warmup_shape", "\"linspace\""),
    ("cifar10-swav-unmix.toml", "train.warmup_shape", "\"linspace\""),
    ("cifar100-swav-unmix.toml", "train.warmup_shape", "\"linspace\""),
    // Issue 32: the authors' CIFAR MoCo loop numbers epochs 1..E; their SwAV queue starts at
    // their 0-based epoch 15, our 1-based 16.
    ("cifar10-moco-unmix.toml", "train.schedule", "\"cosine-epoch-to-zero\""),
    ("cifar100-moco-unmix.toml", "train.schedule", "\"cosine-epoch-to-zero\""),
    ("cifar10-moco-unmix.toml", "method.unmix_pass_per_direction", "true"),
    ("cifar100-moco-unmix.toml", "method.unmix_pass_per_direction", "true"),
    ("fmnist-swav-unmix.toml", "method.swav_queue_start_epoch", "16"),
    ("cifar10-swav-unmix.toml", "method.swav_queue_start_epoch", "16"),
    ("cifar100-swav-unmix.toml", "method.swav_queue_start_epoch", "16"),
];

#[test]
fn every_shipped_config_resolves_as_before_the_typed_settings() {
    // tests/fixtures/resolved-configs holds each shipped config as resolved by commit b3f2962,
    // before the choices became enums and [method] the method's own settings: the same run.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(root.join("configs")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let now = Config::load(&path, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        // Configs shipped after b3f2962 have no earlier resolution to match (they still must load).
        if ADDED_AFTER_B3F2962.contains(&name.as_str()) {
            continue;
        }
        let old_text = std::fs::read_to_string(root.join("tests/fixtures/resolved-configs").join(&name))
            .unwrap_or_else(|_| panic!("no snapshot for {name}"));
        let changes: Vec<(&str, &str)> =
            CHANGED_AFTER_B3F2962.iter().filter(|c| c.0 == name).map(|&(_, k, v)| (k, v)).collect();
        let sets: Vec<String> = changes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let before = Config::from_saved_toml(&old_text, &name, &sets).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(now, before, "{name} resolves to another config than before (beyond {changes:?})");
        // And key by key: every value resolved now is the value resolved then; the only keys
        // the old file has beyond these are other methods' settings under [method].
        let old: toml::Table = toml::from_str(&old_text).unwrap();
        let new: toml::Table = toml::from_str(&now.to_toml()).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys_with_values(&new, "", &mut a);
        keys_with_values(&old, "", &mut b);
        let old_map: std::collections::BTreeMap<String, toml::Value> = b.into_iter().collect();
        for (k, v) in &a {
            let literal = |x: &str| toml::from_str::<toml::Table>(&format!("x = {x}")).unwrap()["x"].clone();
            let expected = match changes.iter().find(|c| c.0 == k) {
                Some((_, now)) => Some(literal(now)),
                None => match KEYS_ADDED_AFTER_B3F2962.iter().find(|a| a.0 == k) {
                    Some((_, then)) => Some(literal(then)),
                    None => old_map.get(k).cloned(),
                },
            };
            assert_eq!(expected.as_ref(), Some(v), "{name}: {k}");
        }
        let new_keys: std::collections::BTreeSet<&String> = a.iter().map(|(k, _)| k).collect();
        for k in old_map.keys().filter(|k| !new_keys.contains(k)) {
            assert!(k.starts_with("method."), "{name}: {k} was resolved before and is gone");
        }
        n += 1;
    }
    assert!(n >= 25, "{n} configs");
}

#[test]
fn a_checkpoint_written_before_the_typed_settings_still_loads_and_evaluates() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // tests/fixtures/checkpoint-b3f2962: a tiny MoCo + Un-Mix run (widths 4, dim 16, 1 epoch on
    // 256 fixture images) written by commit b3f2962, whose config lists every method's keys.
    let ckpt = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoint-b3f2962/last.safetensors");
    let (_, meta) = checkpoint::load(&ckpt).unwrap();
    assert!(meta.config.contains("prototypes = 100"), "the fixture has the old flat [method] table");
    let root = format!("data.root=\"{}\"", fixture().display());
    let run = unmix::build::LoadedRun::from_checkpoint(&ckpt, &[root]).unwrap();
    let unmix::method::MethodConfig::Moco(m) = &run.cfg.method else { panic!("a MoCo checkpoint") };
    assert_eq!((m.dim, m.queue, run.cfg.model.widths), (16, 64, [4, 4, 4, 4]));
    let r =
        unmix::eval::knn::KnnData::load(&run.cfg).unwrap().evaluate(&run.cfg, run.device, run.method.as_ref()).unwrap();
    // The run reported 37.50 % at its end (its summary.json beside the checkpoint): the same
    // weights give the same neighbours, up to ties that rounding may break differently.
    assert!((r.top1 - 37.5).abs() <= 1.0, "kNN top-1 {}", r.top1);
}
