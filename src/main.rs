//! The `unmix` command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use unmix::config::Config;
use unmix::train::{self, checkpoint, RunOptions};

#[derive(Parser)]
#[command(name = "unmix", version, about = "Un-Mix self-supervised pretraining (image mixtures over MoCo and other siamese methods) on libtorch")]
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
        /// Continue the run in --out from its last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Stop after this many finished epochs (continue later with --resume).
        #[arg(long, value_name = "N")]
        until_epoch: Option<usize>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Weighted kNN accuracy of a checkpoint's encoder (bank: train split, queries: test split).
    Knn {
        /// Checkpoint file (a run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE", required_unless_present = "random_init")]
        checkpoint: Option<PathBuf>,
        /// Evaluate a randomly initialised network built from --config instead (the baseline
        /// every pretraining must beat).
        #[arg(long, requires = "config", conflicts_with = "checkpoint")]
        random_init: bool,
        /// Config for --random-init.
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
    /// Ablation: the base method and + Un-Mix on the same seeds (everything else equal), with a
    /// mean +- std table (compare.md), compare.json and a plot, under --out.
    Compare {
        /// TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Seeds per arm (the config's seed, +1, ...).
        #[arg(long, default_value_t = 3)]
        seeds: usize,
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
    /// (Re)generate a run folder's report: loss/lr/accuracy plots, a PCA map of test embeddings
    /// and report.md.
    Report {
        /// The run folder.
        #[arg(value_name = "RUN_DIR")]
        run: PathBuf,
    },
    /// Export the trained backbone with torchvision's parameter names (safetensors), loadable by
    /// torchvision.models.resnetXX with load_state_dict(strict=True); see README.
    Export {
        /// Checkpoint file (a run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// Output format (only "safetensors").
        #[arg(long, default_value = "safetensors")]
        format: String,
        /// Output file (default: backbone.safetensors in the run folder).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write embeddings of a split (unaugmented, eval mode) and their labels as .npy files:
    /// OUT and OUT with `.labels.npy`.
    Embed {
        /// Checkpoint file (a run's checkpoints/last.safetensors).
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
        /// Dataset folder, if not where the run found it.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// "test" or "train".
        #[arg(long, default_value = "test")]
        split: String,
        /// "backbone" (pooled features) or "head" (projection output).
        #[arg(long, default_value = "backbone")]
        features: String,
        /// Output .npy file for the embeddings.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
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
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Pretrain { config, mut set, data, out, resume, until_epoch, quiet } => {
            if let Some(d) = data {
                set.push(format!("data.root={}", toml_string(&d.display().to_string())));
            }
            let (cfg, out) = if resume {
                let out = out.context("--resume needs --out DIR, the run folder to continue")?;
                let saved = out.join("config.toml");
                (Config::load(&saved, &set).with_context(|| format!("cannot resume the run in {}", out.display()))?, out)
            } else {
                let path = config.context("pretrain needs --config FILE (e.g. configs/fmnist-moco-unmix.toml)")?;
                let cfg = Config::load(&path, &set)?;
                let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
                (cfg, out.unwrap_or_else(|| PathBuf::from("runs").join(stem)))
            };
            let opts = RunOptions { out: out.clone(), resume, until_epoch, progress: !quiet, report: true, skip_eval: false };
            let summary = train::pretrain(&cfg, &opts)?;
            if summary.get("rank").is_some() {
                // A process other than rank 0 of a multi-process run: rank 0 reports.
                return Ok(());
            }
            println!("run folder: {}", out.display());
            if let Some(knn) = summary.get("knn").filter(|k| !k.is_null()) {
                println!(
                    "kNN top-1: {:.2}%  (top-5 {:.2}%; {})",
                    knn["top1"].as_f64().unwrap_or(f64::NAN),
                    knn["top5"].as_f64().unwrap_or(f64::NAN),
                    knn["protocol"].as_str().unwrap_or("")
                );
            }
            if let Some(p) = summary.get("online_probe").filter(|p| !p.is_null()) {
                println!("online linear probe top-1: {:.2}%", p["top1"].as_f64().unwrap_or(f64::NAN));
            }
            println!("training images/second: {:.1}", summary["images_per_second"].as_f64().unwrap_or(0.0));
            Ok(())
        }
        Command::Knn { checkpoint: path, random_init, config, data, k, t, mut set } => {
            if let Some(k) = k {
                set.push(format!("eval.knn_k={k}"));
            }
            if let Some(t) = t {
                set.push(format!("eval.knn_t={t}"));
            }
            let run = match (&path, random_init) {
                (Some(p), false) => LoadedRun::from_checkpoint(p, data, set)?,
                _ => LoadedRun::random(&config.expect("clap requires --config"), data, set)?,
            };
            let data = train::KnnData::load(&run.cfg)?;
            let r = data.evaluate(&run.cfg, run.device, run.method.as_ref())?;
            let what = if random_init { "random init".to_string() } else { format!("epoch {}", run.epoch) };
            println!("kNN top-1: {:.2}%  top-5: {:.2}%  ({what}; {})", r.top1, r.top5, unmix::report::knn_protocol(&run.cfg, &r));
            Ok(())
        }
        Command::Bench(BenchCommand::Pipeline { source, size, images, batch, workers, in_memory }) => {
            tch::set_num_threads(1);
            let r = unmix::bench::pipeline::run(&unmix::bench::pipeline::PipelineArgs { source: &source, size, images, batch, workers, seed: 0, in_memory })?;
            println!("{r}");
            Ok(())
        }
        Command::Bench(BenchCommand::Step { model, batch, precision, steps, warmup, threads, set }) => {
            let p = unmix::precision::Precision::parse(&precision).ok_or_else(|| anyhow::anyhow!("--precision {precision}: use fp32 or bf16"))?;
            println!("{}", unmix::bench::model::step(&model, batch, p, steps, warmup, threads, &set)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Loop { steps, run, precision, set }) => {
            let p = unmix::precision::Precision::parse(&precision).ok_or_else(|| anyhow::anyhow!("--precision {precision}: use fp32 or bf16"))?;
            let d = run.data.map(|d| d.display().to_string());
            println!("{}", unmix::bench::model::training_loop(d.as_deref(), steps, run.workers, run.threads, p, &set)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Knn { run }) => {
            let d = run.data.map(|d| d.display().to_string());
            println!("{}", unmix::bench::model::knn(d.as_deref(), run.workers, run.threads)?);
            Ok(())
        }
        Command::Preview { config, mut set, data, images, mode, out } => {
            if let Some(d) = data {
                set.push(format!("data.root={}", toml_string(&d.display().to_string())));
            }
            if images < 2 {
                anyhow::bail!("--images must be at least 2: the partner of sample i is sample N-1-i");
            }
            let cfg = Config::load(&config, &set)?;
            let d = unmix::report::preview::write_preview(&cfg, images, mode.as_deref(), &out)?;
            println!("wrote {} ({} with lambda {:.3})", out.display(), if d.is_cutmix() { "CutMix" } else { "mixup" }, d.lam);
            Ok(())
        }
        Command::Compare { config, seeds, mut set, data, out, quiet } => {
            if let Some(d) = data {
                set.push(format!("data.root={}", toml_string(&d.display().to_string())));
            }
            if seeds == 0 {
                anyhow::bail!("--seeds must be at least 1");
            }
            let cfg = Config::load(&config, &set)?;
            let stem = config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(format!("compare-{stem}")));
            let md = unmix::compare::compare(&cfg, seeds, &out, !quiet)?;
            println!("{md}
written to {}", out.join("compare.md").display());
            Ok(())
        }
        Command::Report { run } => {
            let out = unmix::report::write_report(&run)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Export { checkpoint: path, format, out } => {
            if format != "safetensors" {
                anyhow::bail!("--format {format}: only \"safetensors\" is supported");
            }
            let (tensors, _) = checkpoint::load(&path)?;
            let state = unmix::export::torchvision_state(&tensors).with_context(|| format!("{}", path.display()))?;
            let out = out.unwrap_or_else(|| path.parent().and_then(|d| d.parent()).unwrap_or(std::path::Path::new(".")).join("backbone.safetensors"));
            tch::Tensor::write_safetensors(&state, &out).with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {} tensors with torchvision names to {}", state.len(), out.display());
            Ok(())
        }
        Command::Embed { checkpoint: path, data, split, features, out } => {
            let which = match features.as_str() {
                "backbone" => unmix::method::Features::Backbone,
                "head" => unmix::method::Features::Head,
                f => anyhow::bail!("--features {f}: use \"backbone\" or \"head\""),
            };
            let train = match split.as_str() {
                "train" => true,
                "test" => false,
                s => anyhow::bail!("--split {s}: use \"train\" or \"test\""),
            };
            let run = LoadedRun::from_checkpoint(&path, data, vec![])?;
            let set = unmix::data::load_split(&run.cfg, train)?;
            let recipes = unmix::data::eval_recipes(&run.cfg);
            let _layout = unmix::model::layout::ChannelsLast::for_eval(run.method.trainable(), run.device);
            let embed = |x: &tch::Tensor| run.method.embed(x, which);
            let x = unmix::eval::knn::extract(&set.data, &recipes, run.cfg.eval.batch_size, run.cfg.data.workers, run.device, false, &embed)?;
            let labels = unmix::eval::linear::labels_tensor(&set.labels, tch::Device::Cpu);
            let label_path = out.with_extension("labels.npy");
            unmix::export::write_npy(&out, &x)?;
            unmix::export::write_npy(&label_path, &labels)?;
            println!("wrote {:?} embeddings to {} and labels to {}", x.size(), out.display(), label_path.display());
            Ok(())
        }
        Command::Linear { checkpoint: path, random_init, config, protocol, preset, epochs, lr, data, set } => {
            let paper = match protocol.as_str() {
                "cached" => None,
                p => Some(unmix::eval::protocol::Protocol::parse(p).with_context(|| format!("--protocol {p}: use \"cached\", \"moco\" or \"swav\""))?),
            };
            if paper.is_some() && preset.is_some() {
                anyhow::bail!("--preset sets the cached-features probe; --protocol {protocol} has its own settings (change them with --epochs and --lr)");
            }
            let run = match (&path, random_init) {
                (Some(p), false) => LoadedRun::from_checkpoint(p, data, set)?,
                _ => LoadedRun::random(&config.expect("clap requires --config"), data, set)?,
            };
            let what = if random_init { "random init".to_string() } else { format!("epoch {}", run.epoch) };
            if let Some(p) = paper {
                let mut pc = unmix::eval::protocol::ProtocolConfig::new(p);
                if let Some(e) = epochs {
                    pc.epochs = e;
                }
                if let Some(l) = lr {
                    pc.lr = l;
                }
                pc.seed = run.cfg.seed;
                let (r, description) = unmix::eval::protocol::evaluate(&run.cfg, run.device, run.method.as_ref(), &pc, true)?;
                println!(
                    "linear top-1 ({protocol} protocol): best {:.2}% at epoch {} of {} (the number the authors' script reports), last epoch {:.2}% (top-5 {:.2}%); {what}",
                    r.best_top1, r.best_epoch, pc.epochs, r.last_top1, r.last_top5
                );
                if let Some(run_dir) = path.as_ref().and_then(|p| p.parent()).and_then(|d| d.parent()) {
                    let v = serde_json::json!({"protocol": protocol, "description": description, "epoch": run.epoch, "settings": pc, "result": r});
                    let out = run_dir.join(format!("linear-{protocol}.json"));
                    std::fs::write(&out, serde_json::to_string_pretty(&v)?).with_context(|| format!("cannot write {}", out.display()))?;
                }
                return Ok(());
            }
            let preset = preset.unwrap_or_else(|| if run.cfg.method.name == "moco" { "moco".into() } else { "swav".into() });
            let mut pc = unmix::eval::linear::ProbeConfig::preset(&preset)
                .with_context(|| format!("--preset {preset}: use \"moco\" or \"swav\""))?;
            if let Some(e) = epochs {
                pc.epochs = e;
            }
            if let Some(l) = lr {
                pc.lr = l;
            }
            pc.seed = run.cfg.seed;
            let data = train::KnnData::load(&run.cfg)?;
            let (xt, xs) = data.features(&run.cfg, run.device, run.method.as_ref(), unmix::method::Features::Backbone, false)?;
            let yt = unmix::eval::linear::labels_tensor(&data.bank.labels, run.device);
            let ys = unmix::eval::linear::labels_tensor(&data.test.labels, run.device);
            let r = unmix::eval::linear::probe(&xt, &yt, &xs, &ys, data.classes() as i64, &pc);
            let protocol = format!(
                "cached-features linear probe on frozen {}-d backbone features (eval-mode BN, unaugmented, precomputed), preset {preset}: SGD lr {} momentum {} wd {}, {} epochs, {}, batch {}; trained on the {} train split, top-1 on its test split",
                xt.size()[1], pc.lr, pc.momentum, pc.weight_decay, pc.epochs,
                if pc.milestones.is_empty() { "cosine".to_string() } else { format!("lr x0.1 at epochs {:?}", pc.milestones) },
                pc.batch_size, run.cfg.data.dataset
            );
            println!("linear top-1: {:.2}%  top-5: {:.2}%  (train top-1 {:.2}%; {what}; {protocol})", r.top1, r.top5, r.train_top1);
            if let Some(p) = &path {
                if let Some(run_dir) = p.parent().and_then(|d| d.parent()) {
                    let v = serde_json::json!({"top1": r.top1, "top5": r.top5, "train_top1": r.train_top1, "epoch": run.epoch, "probe": pc, "protocol": protocol});
                    let out = run_dir.join("linear.json");
                    std::fs::write(&out, serde_json::to_string_pretty(&v)?).with_context(|| format!("cannot write {}", out.display()))?;
                }
            }
            Ok(())
        }
    }
}

/// A network rebuilt for evaluation: from a checkpoint, or randomly initialised from a config.
struct LoadedRun {
    cfg: Config,
    device: tch::Device,
    method: Box<dyn unmix::method::Method>,
    epoch: usize,
}

impl LoadedRun {
    fn from_checkpoint(path: &std::path::Path, data: Option<PathBuf>, mut set: Vec<String>) -> Result<LoadedRun> {
        let (tensors, meta) = checkpoint::load(path)?;
        if let Some(d) = data {
            set.push(format!("data.root={}", toml_string(&d.display().to_string())));
        }
        let cfg = Config::from_toml(&meta.config, &format!("the config saved in {}", path.display()), &set)?;
        let device = train::setup_runtime(&cfg)?;
        let mut method = train::build_method(&cfg, device)?;
        method.load_state(&tensors).with_context(|| format!("{}", path.display()))?;
        Ok(LoadedRun { cfg, device, method, epoch: meta.epoch })
    }

    fn random(config: &std::path::Path, data: Option<PathBuf>, mut set: Vec<String>) -> Result<LoadedRun> {
        if let Some(d) = data {
            set.push(format!("data.root={}", toml_string(&d.display().to_string())));
        }
        let cfg = Config::load(config, &set)?;
        let device = train::setup_runtime(&cfg)?;
        let method = train::build_method(&cfg, device)?;
        Ok(LoadedRun { cfg, device, method, epoch: 0 })
    }
}

/// Quotes a path as a TOML string for a --set override.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
