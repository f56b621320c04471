//! The `unmix` command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use unmix::build::LoadedRun;
use unmix::config::Config;
use unmix::console::StopReason;
use unmix::eval::knn::KnnData;
use unmix::eval::protocol::{Protocol, ProtocolConfig};
use unmix::say;
use unmix::train::{self, Finished, RunOptions};

#[derive(Parser)]
#[command(
    name = "unmix",
    version,
    about = "Un-Mix self-supervised pretraining (image mixtures over MoCo and other siamese methods) on libtorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain an encoder; evaluates kNN as configured and writes a run folder
    /// (config.toml, metrics.jsonl, steps.jsonl, checkpoints/last.safetensors, summary.json).
    Pretrain {
        /// TOML configuration (e.g. configs/fmnist-moco-unmix.toml). With --resume, the run
        /// folder's saved config.toml is used instead.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Override a config key, e.g. --set train.epochs=2 --set unmix.enabled=false. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Dataset folder; the same as --set data.root=DIR.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Run folder (default: runs/<config name>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Continue the run in --out from its last checkpoint, with the config saved in it. Edits
        /// of the run's config.toml and --set may change only what keeps the run's meaning:
        /// train.epochs / train.steps (to extend it), train.log_every, eval.knn_every, knn_k,
        /// knn_t, batch_size, features, knn_metric, data.root / eval_root (the same images
        /// elsewhere), data.eval_resize / eval_crop, data.workers / prefetch, threads, device;
        /// any other change (data, batch, augmentations, model, method, mixing) is refused,
        /// naming the key.
        #[arg(long, conflicts_with = "config")]
        resume: bool,
        /// A new run into an --out folder that already holds files: move them aside to
        /// OUT.old-<time> first (nothing is deleted). Without it such a run is refused.
        #[arg(long, conflicts_with = "resume")]
        force: bool,
        /// Stop after this many finished epochs (continue later with --resume).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        until_epoch: Option<u64>,
        /// Start the encoders from existing weights (model.init_from): an unmix checkpoint or
        /// export, or a torchvision-named ResNet state dict as .safetensors or a .pth written by
        /// torch.save(model.state_dict()). Strict: keys missing, unexpected or of another shape
        /// are refused by name.
        #[arg(long, value_name = "FILE", conflicts_with = "resume")]
        init_from: Option<PathBuf>,
        /// With --init-from: a file without this method's projection head (a torchvision
        /// classifier) starts the head from random weights instead of being refused.
        #[arg(long, requires = "init_from")]
        init_allow_missing_head: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Weighted kNN accuracy of a checkpoint's encoder (bank: train split, queries: test split).
    Knn {
        /// Checkpoint file (a run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE", required_unless_present_any = ["random_init", "raw_pixels"])]
        checkpoint: Option<PathBuf>,
        /// Evaluate a randomly initialised network built from --config instead (the baseline
        /// every pretraining must beat).
        #[arg(long, requires = "config", conflicts_with = "checkpoint")]
        random_init: bool,
        /// kNN on the evaluation images' normalized pixels, no network: the other baseline, with
        /// the same readout (k, t, metric, bank and queries) as --config's.
        #[arg(long, requires = "config", conflicts_with_all = ["checkpoint", "random_init"])]
        raw_pixels: bool,
        /// Config for --random-init or --raw-pixels.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Dataset folder, if not where the run found it.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Neighbours (default: the run's eval.knn_k).
        #[arg(long)]
        k: Option<usize>,
        /// Temperature of the vote weights exp(sim / t) (default: the run's eval.knn_t).
        #[arg(long)]
        t: Option<f64>,
        /// Override a key of the saved config, e.g. --set device=cuda. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Write a PNG grid of what Un-Mix does to a batch of your images: view 1, view 2, the
    /// mixture and its reversed partner, with the mode (mixup/CutMix) and lambda.
    Preview {
        /// TOML configuration (data and view recipes are taken from it).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Override a config key. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Dataset folder; the same as --set data.root=DIR.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Images in the batch (rows of the grid).
        #[arg(long, default_value_t = 8)]
        images: usize,
        /// Force "mixup" or "cutmix" (default: drawn as in training's first step).
        #[arg(long)]
        mode: Option<String>,
        /// Output PNG.
        #[arg(long, value_name = "FILE", default_value = "unmix-preview.png")]
        out: PathBuf,
    },
    /// Arms on the same seeds, everything else equal, with counted compute beside accuracy: the
    /// base method, + Un-Mix, the rival mixtures, or one matched to another's compute. Writes a
    /// table (cost, time, kNN on head and backbone, paired differences with 95 % intervals:
    /// compare.md), compare.json and a plot of kNN against compute under --out; rerun to resume.
    Compare {
        /// TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Seeds per arm (the config's seed, +1, ...).
        #[arg(long, default_value_t = 3)]
        seeds: usize,
        /// The arms, comma-separated: base, unmix, imix, mixco, or ARM@OTHER (ARM trained for the
        /// steps whose counted compute equals OTHER's at the config's epochs, e.g. base@unmix).
        #[arg(long, default_value = "base,unmix", value_name = "LIST")]
        arms: String,
        /// The arm the paired differences are taken against (default: the first of --arms).
        #[arg(long, value_name = "ARM")]
        reference: Option<String>,
        /// Override a config key, e.g. --set train.epochs=3. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Dataset folder; the same as --set data.root=DIR.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Folder for the runs and the table (default: runs/compare-<config name>).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Benchmarks that print figures (see scripts/bench-pipeline.sh for the torchvision side).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check the GPU path in one command (scripts/gpu-check.sh runs it on a GPU machine): the
    /// same training steps on the CPU and the device, autocast bf16, the split-BN node, pinned
    /// staging, a one-process NCCL (or Gloo) group doing each collective. Prints JSON; exit
    /// status 1 when a check fails. `--device cpu` runs every check on the CPU (a dry run).
    Selftest {
        /// "cuda", "cuda:N" or "cpu".
        #[arg(long, default_value = "cuda")]
        device: String,
    },
    /// (Re)generate a run folder's report: loss/lr/accuracy plots, a PCA map of test embeddings
    /// and report.md.
    Report {
        /// The run folder.
        #[arg(value_name = "RUN_DIR")]
        run: PathBuf,
    },
    /// Export the trained backbone with torchvision's parameter names (safetensors, with the
    /// network described in its header), and a PyTorch module file beside it (OUT.py) that builds
    /// the network and loads the weights strictly; says whether torchvision's own ResNet takes them.
    Export {
        /// Checkpoint file (a run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// Output format (only "safetensors").
        #[arg(long, default_value = "safetensors")]
        format: String,
        /// Output file (default: backbone.safetensors in the run folder, when the checkpoint is a
        /// run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace --out when it exists (never a run's own records or a checkpoint).
        #[arg(long)]
        force: bool,
    },
    /// Write the embeddings of a split (unaugmented, eval mode) and their labels into one NumPy
    /// .npz file (`embeddings`, `labels`).
    Embed {
        /// Checkpoint file (a run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// Dataset folder, if not where the run found it.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// "test" or "train" (labeled splits), or "images": the pretraining images themselves
        /// (an unlabeled folder's photos).
        #[arg(long, default_value = "test")]
        split: String,
        /// "backbone" (pooled features) or "head" (projection output).
        #[arg(long, default_value = "backbone")]
        features: String,
        /// Output .npz file: `embeddings` (N x D) and `labels` (N).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace --out when it exists (never a run's own records or a checkpoint).
        #[arg(long)]
        force: bool,
    },
    /// Linear evaluation of the frozen backbone (eval-mode BN, no head), top-1/top-5 on the test
    /// split. Default (--protocol cached): a fast probe on features computed once from the
    /// unaugmented train split. --protocol moco|swav: the papers' linear evaluation, a classifier
    /// trained on augmented crops (RandomResizedCrop + flip) through the backbone every epoch with
    /// the settings of MoCo's main_lincls or SwAV's eval_linear; reports the best epoch's top-1 (what
    /// those scripts report) and the last epoch's.
    Linear {
        /// Checkpoint file (a run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE", required_unless_present = "random_init")]
        checkpoint: Option<PathBuf>,
        /// Probe a randomly initialised network built from --config instead (the baseline).
        #[arg(long, requires = "config")]
        random_init: bool,
        /// Config for --random-init.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// "cached" (default: the fast probe on precomputed unaugmented features), "moco" (MoCo's
        /// linear evaluation: augmented crops, SGD lr 30, batch 256, wd 0, 100 epochs, lr x0.1 at
        /// 60 and 80) or "swav" (SwAV's: augmented crops, SGD lr 0.3, batch 32, wd 1e-6, 100
        /// epochs, cosine).
        #[arg(long, default_value = "cached")]
        protocol: String,
        /// Settings of the cached-features probe: "moco" (lr 30, 100 epochs, steps at 60/80) or
        /// "swav" (lr 0.3, cosine). Default: moco for MoCo runs, swav otherwise.
        #[arg(long)]
        preset: Option<String>,
        /// Probe epochs (default: the preset's).
        #[arg(long)]
        epochs: Option<usize>,
        /// Probe learning rate (default: the preset's).
        #[arg(long)]
        lr: Option<f64>,
        /// Dataset folder, if not where the run found it.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Override a key of the config, e.g. --set device=cuda. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Where to write the result as JSON (default: linear.json / linear-PROTOCOL.json in the
        /// run folder when the checkpoint is a run's checkpoints/last.safetensors, else nowhere).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The two-view MoCo v2 augmentation pipeline (decode, crop, jitter, grayscale, blur, flip,
    /// normalize, batch to tensors) in worker threads; prints images/second as JSON.
    Pipeline {
        /// A CIFAR-10 binary folder (cifar-10-batches-bin) or a folder of photos.
        #[arg(long, value_name = "DIR")]
        source: PathBuf,
        /// Output side of the crops (32 for CIFAR, 224 for ImageNet).
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Samples per run (the source repeated).
        #[arg(long, default_value_t = 10240)]
        images: usize,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Worker threads preparing batches.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Decode the photos once and keep them in memory (measures the augmentations alone).
        #[arg(long)]
        in_memory: bool,
    },
    /// Training steps on fixed batches (MoCo + Un-Mix of the fmnist protocol): forward, backward,
    /// optimizer; prints images/second as JSON.
    Step {
        /// "fmnist" (the protocol's net) or "cifar-resnet18" (ResNet-18, CIFAR stem, 3x32x32).
        #[arg(long, default_value = "fmnist")]
        model: String,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// "fp32" or "bf16".
        #[arg(long, default_value = "fp32")]
        precision: String,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Config overrides, e.g. --set model.memory_format=\"contiguous\".
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Record the timed steps with libtorch's profiler into this Chrome trace (JSON);
        /// bench/profile_summary.py groups its time by kind.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
    },
    /// The machine's attainable throughput through libtorch: large matrix products (fp32, and
    /// bf16 where the CPU has it natively) and a 3x3 convolution; prints GFLOP/s as JSON.
    Peak {
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Seconds each measurement repeats for.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// The fmnist protocol's training loop with its data pipeline for N steps (no evaluation).
    Loop {
        #[arg(long, default_value_t = 60)]
        steps: usize,
        #[command(flatten)]
        run: BenchData,
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// Config overrides, e.g. --set model.memory_format=\"channels-last\".
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// kNN evaluation over the 60k training bank and the 10k test images.
    Knn {
        #[command(flatten)]
        run: BenchData,
    },
    /// Index an ImageFolder tree (CLASS/IMAGE) and feed two-view MoCo v2 batches from it: index
    /// time, resident memory per file, time to the first batch, images/second; prints JSON
    /// (scripts/bench-scale.sh runs it at several sizes).
    Folder {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        #[arg(long, default_value_t = 224)]
        size: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Batches timed after the first.
        #[arg(long, default_value_t = 200)]
        steps: usize,
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// Weighted kNN of random unit queries against a random bank of the given size: time and
    /// peak memory; prints JSON.
    KnnBank {
        #[arg(long, default_value_t = 1_281_167)]
        bank: i64,
        #[arg(long, default_value_t = 10_000)]
        queries: i64,
        #[arg(long, default_value_t = 128)]
        dim: i64,
        #[arg(long, default_value_t = 1000)]
        classes: i64,
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Draw the records of `folder` and `knn-bank` runs (JSON lines) as log-log charts.
    ScalePlot {
        #[arg(long, value_name = "FILE")]
        record: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The machine, for the titles.
        #[arg(long)]
        machine: String,
    },
}

/// Data and threads of the benchmarks that read Fashion-MNIST.
#[derive(clap::Args)]
struct BenchData {
    /// Fashion-MNIST folder (default: the Debian package's).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Data-preparation threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() {
    unmix::alloc::keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// `--data DIR` as the `data.root` override it stands for, after the other `--set`s.
fn with_data(mut set: Vec<String>, data: Option<PathBuf>) -> Vec<String> {
    if let Some(d) = data {
        set.push(unmix::config::data_root_override(&d));
    }
    set
}

/// A checkpoint's network, or the random network of `--random-init --config FILE`.
fn network(checkpoint: Option<&Path>, config: Option<&Path>, set: &[String]) -> Result<LoadedRun> {
    match (checkpoint, config) {
        (Some(p), _) => LoadedRun::from_checkpoint(p, set),
        (None, Some(c)) => LoadedRun::random(c, set),
        (None, None) => anyhow::bail!("give --checkpoint FILE, or --random-init --config FILE"),
    }
}

/// The run folder a checkpoint belongs to: `RUN/checkpoints/last.safetensors` with
/// `RUN/config.toml` beside; None for a checkpoint anywhere else.
fn run_folder(checkpoint: &Path) -> Option<PathBuf> {
    let dir = checkpoint.parent().filter(|d| d.file_name().is_some_and(|n| n == "checkpoints"))?.parent()?;
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    dir.join("config.toml").is_file().then(|| dir.to_path_buf())
}

/// Refuses to write `out` over a checkpoint (the one being read, or any other unmix checkpoint).
fn not_over_a_checkpoint(out: &Path, input: &Path) -> Result<()> {
    let same = match (out.canonicalize(), input.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same || (out.is_file() && unmix::checkpoint::load(out).is_ok()) {
        anyhow::bail!("--out {} is a checkpoint; refusing to write over it (choose another file)", out.display());
    }
    Ok(())
}

/// The files of a run folder that belong to the run (its records, config, lock and report).
const RUN_FILES: [&str; 9] = [
    "config.toml",
    "metrics.jsonl",
    "metrics.csv",
    "steps.jsonl",
    "summary.json",
    "report.md",
    ".lock",
    "loss.png",
    "lr.png",
];

/// An output file of export / embed: never one of a run folder's own files (or inside its
/// checkpoints/ or tensorboard/), and an existing file only with --force.
fn new_output(out: &Path, force: bool) -> Result<()> {
    let parent = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let is_run = |d: &Path| d.join("config.toml").is_file() && d.join("checkpoints").is_dir();
    let owner = parent.file_name().filter(|n| *n == "checkpoints" || *n == "tensorboard").and(parent.parent());
    if (is_run(parent) && RUN_FILES.contains(&name.as_str())) || owner.is_some_and(is_run) {
        anyhow::bail!(
            "--out {} belongs to the run folder {} (its own records); refusing to write over it: choose another file",
            out.display(),
            owner.unwrap_or(parent).display()
        );
    }
    if out.exists() && !force {
        anyhow::bail!("--out {} exists; add --force to replace it, or choose another file", out.display());
    }
    Ok(())
}

/// Checks that `out` can be created, before any long computation: its folder exists and takes
/// a file.
fn writable(out: &Path) -> Result<()> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!("cannot write {}: the folder {} does not exist", out.display(), dir.display());
    }
    let probe = dir.join(format!(".unmix-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| format!("cannot write into {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Runs a command; `Ok` carries the exit status (130 after an interrupt).
fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Pretrain {
            config,
            set,
            data,
            out,
            resume,
            force,
            until_epoch,
            init_from,
            init_allow_missing_head,
            quiet,
        } => {
            let mut set = with_data(set, data);
            if let Some(f) = init_from {
                set.push(format!("model.init_from={}", toml::Value::String(f.display().to_string())));
            }
            if init_allow_missing_head {
                set.push("model.init_allow_missing_head=true".into());
            }
            let (cfg, out) = if resume {
                let out = out.context("--resume needs --out DIR, the run folder to continue")?;
                let (cfg, edits) = train::folder::resume_config(&out, &set)?;
                for e in edits {
                    say!("{e}");
                }
                (cfg, out)
            } else {
                let path = config.context("pretrain needs --config FILE (e.g. configs/fmnist-moco-unmix.toml)")?;
                let cfg = Config::load(&path, &set)?;
                let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
                (cfg, out.unwrap_or_else(|| PathBuf::from("runs").join(stem)))
            };
            let until_epoch = until_epoch.map(|e| e as usize);
            let opts = RunOptions { out: out.clone(), resume, force, until_epoch, progress: !quiet, skip_eval: false };
            let summary = match train::pretrain(&cfg, &opts)? {
                Finished::Main(summary) => summary,
                // A process other than rank 0 of a multi-process run: rank 0 reports.
                Finished::Worker { .. } | Finished::AlreadyFinished { report_missing: false, .. } => return Ok(0),
                Finished::AlreadyFinished { report_missing: true, epochs } => {
                    let report = unmix::report::write_report(&out)?;
                    say!(
                        "the run in {} finished all {epochs} epochs; wrote its missing {}",
                        out.display(),
                        report.display()
                    );
                    return Ok(0);
                }
                Finished::Stopped { reason, epoch, step, checkpoint } => {
                    eprintln!(
                        "{reason}: stopped at step {step} (in epoch {}) with a checkpoint at {}; continue with: unmix pretrain --out {} --resume",
                        epoch + 1,
                        checkpoint.display(),
                        unmix::console::quote(&out)
                    );
                    return Ok(if reason == StopReason::Interrupted { 130 } else { 1 });
                }
            };
            let report = unmix::report::write_report(&out)?;
            say!("report: {}", report.display());
            say!("run folder: {}", out.display());
            if let Some(knn) = &summary.knn {
                say!("kNN top-1: {:.2}%  (top-5 {:.2}%; {})", knn.top1, knn.top5, knn.protocol);
            }
            if let Some(p) = &summary.online_probe {
                say!("online linear probe top-1: {:.2}%", p.top1);
            }
            say!("training images/second: {:.1}", summary.images_per_second);
            Ok(0)
        }
        Command::Knn { checkpoint, random_init: _, raw_pixels, config, data, k, t, mut set } => {
            if let Some(k) = k {
                set.push(format!("eval.knn_k={k}"));
            }
            if let Some(t) = t {
                if !(t > 0.0 && t.is_finite()) {
                    anyhow::bail!("--t {t}: the kNN temperature must be a positive finite number (e.g. 0.1)");
                }
                set.push(format!("eval.knn_t={t}"));
            }
            if raw_pixels {
                let config = config.as_deref().expect("clap: --raw-pixels requires --config");
                let cfg = unmix::config::Config::load(config, &with_data(set, data))?;
                let device = unmix::build::runtime(&cfg)?;
                let r = KnnData::load(&cfg)?.evaluate_raw_pixels(&cfg, device)?;
                say!(
                    "kNN top-1: {:.2}%  top-5: {:.2}%  (raw pixels; {})",
                    r.top1,
                    r.top5,
                    unmix::eval::knn::raw_pixels_protocol(&cfg, &r)
                );
                return Ok(0);
            }
            let run = network(checkpoint.as_deref(), config.as_deref(), &with_data(set, data))?;
            let r = KnnData::load(&run.cfg)?.evaluate(&run.cfg, run.device, run.method.as_ref())?;
            say!(
                "kNN top-1: {:.2}%  top-5: {:.2}%  ({}; {})",
                r.top1,
                r.top5,
                run.describe(),
                unmix::eval::knn::protocol(&run.cfg, &r)
            );
            Ok(0)
        }
        Command::Bench(BenchCommand::Pipeline { source, size, images, batch, workers, in_memory }) => {
            tch::set_num_threads(1);
            let args = unmix::bench::pipeline::PipelineArgs {
                source: &source,
                size,
                images,
                batch,
                workers,
                seed: 0,
                in_memory,
            };
            say!("{}", unmix::bench::pipeline::run(&args)?);
            Ok(0)
        }
        Command::Bench(BenchCommand::Step { model, batch, precision, steps, warmup, threads, set, profile }) => {
            let args = unmix::bench::model::StepArgs {
                model: &model,
                batch,
                precision: parse_precision(&precision)?,
                steps,
                warmup,
                threads,
                set: &set,
                profile: profile.as_deref(),
            };
            say!("{}", unmix::bench::model::step(&args)?);
            Ok(0)
        }
        Command::Bench(BenchCommand::Loop { steps, run, precision, set }) => {
            let d = run.data.map(|d| d.display().to_string());
            let p = parse_precision(&precision)?;
            say!("{}", unmix::bench::model::training_loop(d.as_deref(), steps, run.workers, run.threads, p, &set)?);
            Ok(0)
        }
        Command::Bench(BenchCommand::Peak { threads, seconds }) => {
            say!("{}", unmix::bench::model::peak(threads, seconds)?);
            Ok(0)
        }
        Command::Bench(BenchCommand::Folder { root, size, batch, steps, workers }) => {
            let args = unmix::bench::scale::FolderArgs { root: &root, size, batch, steps, workers };
            say!("{}", unmix::bench::scale::folder(&args)?);
            Ok(0)
        }
        Command::Bench(BenchCommand::KnnBank { bank, queries, dim, classes, threads }) => {
            say!("{}", unmix::bench::scale::knn_bank(bank, queries, dim, classes, threads)?);
            Ok(0)
        }
        Command::Bench(BenchCommand::ScalePlot { record, out, machine }) => {
            unmix::bench::scale::plot(&record, &out, &machine)?;
            say!("wrote {}/scale-{{time,memory,loader}}.png and .svg", out.display());
            Ok(0)
        }
        Command::Bench(BenchCommand::Knn { run }) => {
            let d = run.data.map(|d| d.display().to_string());
            say!("{}", unmix::bench::model::knn(d.as_deref(), run.workers, run.threads)?);
            Ok(0)
        }
        Command::Preview { config, set, data, images, mode, out } => {
            if images < 2 {
                anyhow::bail!("--images must be at least 2: the partner of sample i is sample N-1-i");
            }
            writable(&out)?;
            let cfg = Config::load(&config, &with_data(set, data))?;
            let shown = unmix::report::preview::write_preview(&cfg, images, mode.as_deref(), &out)?;
            say!("wrote {} ({shown})", out.display());
            Ok(0)
        }
        Command::Compare { config, seeds, arms, reference, set, data, out, quiet } => {
            if seeds == 0 {
                anyhow::bail!("--seeds must be at least 1");
            }
            let arms = unmix::compare::parse_arms(&arms)?;
            let reference = match reference {
                Some(r) => r.parse().map_err(|e: anyhow::Error| anyhow::anyhow!("--reference: {e}"))?,
                None => arms[0].clone(),
            };
            let cfg = Config::load(&config, &with_data(set, data))?;
            let stem = config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(format!("compare-{stem}")));
            let opts = unmix::compare::CompareOptions {
                arms: &arms,
                reference: &reference,
                seeds,
                out: &out,
                progress: !quiet,
            };
            let md = unmix::compare::compare(&cfg, &opts)?;
            say!("{md}\nwritten to {}", out.join("compare.md").display());
            Ok(0)
        }
        Command::Selftest { device } => {
            say!("{:#}", unmix::bench::selftest::run(&device)?);
            Ok(0)
        }
        Command::Report { run } => {
            let out = unmix::report::write_report(&run)?;
            say!("wrote {}", out.display());
            Ok(0)
        }
        Command::Export { checkpoint: path, format, out, force } => {
            if format != "safetensors" {
                anyhow::bail!("--format {format}: only \"safetensors\" is supported");
            }
            let out = match out {
                Some(o) => o,
                None => run_folder(&path).map(|d| d.join("backbone.safetensors")).with_context(|| {
                    format!(
                        "{} is not in a run folder (RUN/checkpoints/last.safetensors): give --out FILE",
                        path.display()
                    )
                })?,
            };
            not_over_a_checkpoint(&out, &path)?;
            new_output(&out, force)?;
            writable(&out)?;
            say!("{}", unmix::export::export(&path, &out)?.trim_end());
            Ok(0)
        }
        Command::Embed { checkpoint: path, data, split, features, out, force } => {
            let which = match features.as_str() {
                "backbone" => unmix::method::Features::Backbone,
                "head" => unmix::method::Features::Head,
                f => anyhow::bail!("--features {f}: use \"backbone\" or \"head\""),
            };
            let split = match split.as_str() {
                "train" => unmix::export::EmbedSplit::Train,
                "test" => unmix::export::EmbedSplit::Test,
                "images" => unmix::export::EmbedSplit::Images,
                s => anyhow::bail!("--split {s}: use \"train\", \"test\" or \"images\""),
            };
            not_over_a_checkpoint(&out, &path)?;
            new_output(&out, force)?;
            writable(&out)?;
            let run = LoadedRun::from_checkpoint(&path, &with_data(vec![], data))?;
            let (shape, list) = unmix::export::write_embeddings(&run, split, which, &out)?;
            say!("wrote {} (numpy.load: `embeddings` {shape:?} float32, `labels` int64)", out.display());
            if let Some(list) = list {
                say!("wrote {} (the image files, one per line, in the embeddings' order)", list.display());
            }
            Ok(0)
        }
        Command::Linear { checkpoint: path, random_init: _, config, protocol, preset, epochs, lr, data, set, out } => {
            let paper = match protocol.as_str() {
                "cached" => None,
                p => Some(
                    Protocol::parse(p)
                        .with_context(|| format!("--protocol {p}: use \"cached\", \"moco\" or \"swav\""))?,
                ),
            };
            if paper.is_some() && preset.is_some() {
                anyhow::bail!(
                    "--preset sets the cached-features probe; --protocol {protocol} has its own settings (change them with --epochs and --lr)"
                );
            }
            if epochs == Some(0) {
                anyhow::bail!("--epochs must be at least 1");
            }
            if let Some(l) = lr.filter(|l| !(*l > 0.0 && l.is_finite())) {
                anyhow::bail!("--lr {l}: the learning rate must be a positive finite number");
            }
            let name = if paper.is_some() { format!("linear-{protocol}.json") } else { "linear.json".to_string() };
            let out = out.or_else(|| path.as_deref().and_then(run_folder).map(|d| d.join(&name)));
            if let (Some(o), Some(p)) = (&out, &path) {
                not_over_a_checkpoint(o, p)?;
            }
            if let Some(o) = &out {
                writable(o)?;
            }
            let run = network(path.as_deref(), config.as_deref(), &with_data(set, data))?;
            let what = run.describe();
            let record = if let Some(p) = paper {
                let mut pc = ProtocolConfig::new(p);
                pc.epochs = epochs.unwrap_or(pc.epochs);
                pc.lr = lr.unwrap_or(pc.lr);
                pc.seed = run.cfg.seed;
                let (r, description) =
                    unmix::eval::protocol::evaluate(&run.cfg, run.device, run.method.as_ref(), &pc, true)?;
                say!(
                    "linear top-1 ({protocol} protocol): best {:.2}% at epoch {} of {} (the number the authors' script reports), \
                     last epoch {:.2}% (top-5 {:.2}%); {what}",
                    r.best_top1,
                    r.best_epoch,
                    pc.epochs,
                    r.last_top1,
                    r.last_top5
                );
                serde_json::json!({"protocol": protocol, "description": description, "epoch": run.epoch, "settings": pc, "result": r})
            } else {
                let (r, pc, protocol) = unmix::eval::linear::cached(&run, preset.as_deref(), epochs, lr)?;
                say!(
                    "linear top-1: {:.2}%  top-5: {:.2}%  (train top-1 {:.2}%; {what}; {protocol})",
                    r.top1,
                    r.top5,
                    r.train_top1
                );
                serde_json::json!({"top1": r.top1, "top5": r.top5, "train_top1": r.train_top1, "epoch": run.epoch, "probe": pc, "protocol": protocol})
            };
            match out {
                Some(o) => {
                    std::fs::write(&o, serde_json::to_string_pretty(&record)?)
                        .with_context(|| format!("cannot write {}", o.display()))?;
                    say!("wrote {}", o.display());
                }
                None => say!("(not saved: the checkpoint is not in a run folder; --out FILE saves the result)"),
            }
            Ok(0)
        }
    }
}

fn parse_precision(s: &str) -> Result<unmix::precision::Precision> {
    unmix::precision::Precision::parse(s).ok_or_else(|| anyhow::anyhow!("--precision {s}: use fp32 or bf16"))
}
