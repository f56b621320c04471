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
        #[arg(long, value_name = "FILE")]
        checkpoint: PathBuf,
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
}

fn main() {
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
            let opts = RunOptions { out: out.clone(), resume, until_epoch, progress: !quiet };
            let summary = train::pretrain(&cfg, &opts)?;
            println!("run folder: {}", out.display());
            if let Some(knn) = summary.get("knn").filter(|k| !k.is_null()) {
                println!(
                    "kNN top-1: {:.2}%  (top-5 {:.2}%; {})",
                    knn["top1"].as_f64().unwrap_or(f64::NAN),
                    knn["top5"].as_f64().unwrap_or(f64::NAN),
                    knn["protocol"].as_str().unwrap_or("")
                );
            }
            println!("training images/second: {:.1}", summary["images_per_second"].as_f64().unwrap_or(0.0));
            Ok(())
        }
        Command::Knn { checkpoint: path, data, k, t, mut set } => {
            let (tensors, meta) = checkpoint::load(&path)?;
            if let Some(d) = data {
                set.push(format!("data.root={}", toml_string(&d.display().to_string())));
            }
            if let Some(k) = k {
                set.push(format!("eval.knn_k={k}"));
            }
            if let Some(t) = t {
                set.push(format!("eval.knn_t={t}"));
            }
            let cfg = Config::from_toml(&meta.config, &format!("the config saved in {}", path.display()), &set)?;
            let device = train::setup_runtime(&cfg)?;
            let mut method = train::build_method(&cfg, device)?;
            method.load_state(&tensors).with_context(|| format!("{}", path.display()))?;
            let data = train::KnnData::load(&cfg)?;
            let r = data.evaluate(&cfg, device, method.as_ref())?;
            println!("kNN top-1: {:.2}%  top-5: {:.2}%  (epoch {}; {})", r.top1, r.top5, meta.epoch, unmix::report::knn_protocol(&cfg, &r));
            Ok(())
        }
    }
}

/// Quotes a path as a TOML string for a --set override.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}
