//! The command line's typed options (clap): one struct of options per command, so each
//! command's code in `cli/` takes its own.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "unmix",
    version,
    about = "Un-Mix self-supervised pretraining (image mixtures over MoCo and other siamese methods) on libtorch"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Pretrain an encoder; evaluates kNN as configured and writes a run folder
    /// (config.toml, metrics.jsonl, steps.jsonl, checkpoints/last.safetensors, summary.json).
    Pretrain(PretrainArgs),
    /// Weighted kNN accuracy of a checkpoint's encoder (bank: train split, queries: test split).
    Knn(KnnArgs),
    /// Write a PNG grid of what Un-Mix does to a batch of your images: view 1, view 2, the
    /// mixture and its reversed partner, with the mode (mixup/CutMix) and lambda.
    Preview(PreviewArgs),
    /// Arms on the same seeds, everything else equal, with counted compute beside accuracy: the
    /// base method, + Un-Mix, the rival mixtures, or one matched to another's compute. Writes a
    /// table (cost, time, kNN on head and backbone, paired differences with 95 % intervals:
    /// compare.md), compare.json and a plot of kNN against compute under --out; rerun to resume.
    Compare(CompareArgs),
    /// Benchmarks that print figures (see scripts/bench-pipeline.sh for the torchvision side).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check the GPU path in one command (scripts/gpu-check.sh runs it on a GPU machine): the
    /// same training steps on the CPU and the device, autocast bf16, the split-BN node, pinned
    /// staging, a one-process NCCL (or Gloo) group doing each collective. Prints JSON; exit
    /// status 1 when a check fails. `--device cpu` runs every check on the CPU (a dry run).
    Selftest(SelftestArgs),
    /// (Re)generate a run folder's report: loss/lr/accuracy plots, a PCA map of test embeddings
    /// and report.md.
    Report(ReportArgs),
    /// Export the trained backbone with torchvision's parameter names (safetensors, with the
    /// network described in its header), and a PyTorch module file beside it (OUT.py) that builds
    /// the network and loads the weights strictly; says whether torchvision's own ResNet takes them.
    Export(ExportArgs),
    /// Write the embeddings of a split (unaugmented, eval mode) and their labels into one NumPy
    /// .npz file (`embeddings`, `labels`).
    Embed(EmbedArgs),
    /// Linear evaluation of the frozen backbone (eval-mode BN, no head), top-1/top-5 on the test
    /// split. Default (--protocol cached): a fast probe on features computed once from the
    /// unaugmented train split. --protocol moco|swav: the papers' linear evaluation, a classifier
    /// trained on augmented crops (RandomResizedCrop + flip) through the backbone every epoch with
    /// the settings of MoCo's main_lincls or SwAV's eval_linear; reports the best epoch's top-1 (what
    /// those scripts report) and the last epoch's.
    Linear(LinearArgs),
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The two-view MoCo v2 augmentation pipeline (decode, crop, jitter, grayscale, blur, flip,
    /// normalize, batch to tensors) in worker threads; prints images/second as JSON.
    Pipeline(BenchPipelineArgs),
    /// Training steps on fixed batches (MoCo + Un-Mix of the fmnist protocol): forward, backward,
    /// optimizer; prints images/second as JSON.
    Step(BenchStepArgs),
    /// The machine's attainable throughput through libtorch: large matrix products (fp32, and
    /// bf16 where the CPU has it natively) and a 3x3 convolution; prints GFLOP/s as JSON.
    Peak(BenchPeakArgs),
    /// The fmnist protocol's training loop with its data pipeline for N steps (no evaluation).
    Loop(BenchLoopArgs),
    /// kNN evaluation over the 60k training bank and the 10k test images.
    Knn(BenchKnnArgs),
    /// Index an ImageFolder tree (CLASS/IMAGE) and feed two-view MoCo v2 batches from it: index
    /// time, resident memory per file, time to the first batch, images/second; prints JSON
    /// (scripts/bench-scale.sh runs it at several sizes).
    Folder(BenchFolderArgs),
    /// Weighted kNN of random unit queries against a random bank of the given size: time and
    /// peak memory; prints JSON.
    KnnBank(BenchKnnBankArgs),
    /// Draw the records of `folder` and `knn-bank` runs (JSON lines) as log-log charts.
    ScalePlot(BenchScalePlotArgs),
}

/// Data and threads of the benchmarks that read Fashion-MNIST.
#[derive(clap::Args)]
pub struct BenchData {
    /// Fashion-MNIST folder (default: the Debian package's).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Data-preparation threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// libtorch intra-op threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// The options of `unmix pretrain`.
#[derive(clap::Args)]
pub struct PretrainArgs {
    /// TOML configuration (e.g. configs/fmnist-moco-unmix.toml). With --resume, the run
    /// folder's saved config.toml is used instead.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override a config key, e.g. --set train.epochs=2 --set unmix.enabled=false. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Dataset folder; the same as --set data.root=DIR.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Run folder (default: runs/<config name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, with the config saved in it. Edits
    /// of the run's config.toml and --set may change only what keeps the run's meaning:
    /// train.epochs / train.steps (to extend it), train.log_every, eval.knn_every, knn_k,
    /// knn_t, batch_size, features, knn_metric, data.root / eval_root (the same images
    /// elsewhere), data.eval_resize / eval_crop, data.workers / prefetch, threads, device;
    /// any other change (data, batch, augmentations, model, method, mixing) is refused,
    /// naming the key.
    #[arg(long, conflicts_with = "config")]
    pub resume: bool,
    /// A new run into an --out folder that already holds files: move them aside to
    /// OUT.old-<time> first (nothing is deleted). Without it such a run is refused.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Stop after this many finished epochs (continue later with --resume).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub until_epoch: Option<u64>,
    /// Start the encoders from existing weights (model.init_from): an unmix checkpoint or
    /// export, or a torchvision-named ResNet state dict as .safetensors or a .pth written by
    /// torch.save(model.state_dict()). Strict: keys missing, unexpected or of another shape
    /// are refused by name.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// With --init-from: a file without this method's projection head (a torchvision
    /// classifier) starts the head from random weights instead of being refused.
    #[arg(long, requires = "init_from")]
    pub init_allow_missing_head: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The options of `unmix knn`.
#[derive(clap::Args)]
pub struct KnnArgs {
    /// Checkpoint file (a run's checkpoints/last.safetensors).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["random_init", "raw_pixels"])]
    pub checkpoint: Option<PathBuf>,
    /// Evaluate a randomly initialised network built from --config instead (the baseline
    /// every pretraining must beat).
    #[arg(long, requires = "config", conflicts_with = "checkpoint")]
    pub random_init: bool,
    /// kNN on the evaluation images' normalized pixels, no network: the other baseline, with
    /// the same readout (k, t, metric, bank and queries) as --config's.
    #[arg(long, requires = "config", conflicts_with_all = ["checkpoint", "random_init"])]
    pub raw_pixels: bool,
    /// Config for --random-init or --raw-pixels.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Dataset folder, if not where the run found it.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Neighbours (default: the run's eval.knn_k).
    #[arg(long)]
    pub k: Option<usize>,
    /// Temperature of the vote weights exp(sim / t) (default: the run's eval.knn_t).
    #[arg(long)]
    pub t: Option<f64>,
    /// Override a key of the saved config, e.g. --set device=cuda. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// The options of `unmix preview`.
#[derive(clap::Args)]
pub struct PreviewArgs {
    /// TOML configuration (data and view recipes are taken from it).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override a config key. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Dataset folder; the same as --set data.root=DIR.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Images in the batch (rows of the grid).
    #[arg(long, default_value_t = 8)]
    pub images: usize,
    /// Force "mixup" or "cutmix" (default: drawn as in training's first step).
    #[arg(long)]
    pub mode: Option<String>,
    /// Output PNG.
    #[arg(long, value_name = "FILE", default_value = "unmix-preview.png")]
    pub out: PathBuf,
}

/// The options of `unmix compare`.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// TOML configuration.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Seeds per arm (the config's seed, +1, ...).
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// The arms, comma-separated: base, unmix, imix, mixco, or ARM@OTHER (ARM trained for the
    /// steps whose counted compute equals OTHER's at the config's epochs, e.g. base@unmix).
    #[arg(long, default_value = "base,unmix", value_name = "LIST")]
    pub arms: String,
    /// The arm the paired differences are taken against (default: the first of --arms).
    #[arg(long, value_name = "ARM")]
    pub reference: Option<String>,
    /// Override a config key, e.g. --set train.epochs=3. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Dataset folder; the same as --set data.root=DIR.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Folder for the runs and the table (default: runs/compare-<config name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train the missing runs here even when finished ones of this comparison ran on another
    /// machine class (refused by default: the pairs would carry the classes' rounding difference).
    #[arg(long)]
    pub allow_mixed_machines: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The options of `unmix selftest`.
#[derive(clap::Args)]
pub struct SelftestArgs {
    /// "cuda", "cuda:N" or "cpu".
    #[arg(long, default_value = "cuda")]
    pub device: String,
}

/// The options of `unmix report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// The run folder.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
}

/// The options of `unmix export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Checkpoint file (a run's checkpoints/last.safetensors).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Output format (only "safetensors").
    #[arg(long, default_value = "safetensors")]
    pub format: String,
    /// Output file (default: backbone.safetensors in the run folder, when the checkpoint is a
    /// run's checkpoints/last.safetensors).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace --out when it exists (never a run's own records or a checkpoint).
    #[arg(long)]
    pub force: bool,
}

/// The options of `unmix embed`.
#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Checkpoint file (a run's checkpoints/last.safetensors).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Dataset folder, if not where the run found it.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// "test" or "train" (labeled splits), or "images": the pretraining images themselves
    /// (an unlabeled folder's photos).
    #[arg(long, default_value = "test")]
    pub split: String,
    /// "backbone" (pooled features) or "head" (projection output).
    #[arg(long, default_value = "backbone")]
    pub features: String,
    /// Output .npz file: `embeddings` (N x D) and `labels` (N).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace --out when it exists (never a run's own records or a checkpoint).
    #[arg(long)]
    pub force: bool,
}

/// The options of `unmix linear`.
#[derive(clap::Args)]
pub struct LinearArgs {
    /// Checkpoint file (a run's checkpoints/last.safetensors).
    #[arg(long, value_name = "FILE", required_unless_present = "random_init")]
    pub checkpoint: Option<PathBuf>,
    /// Probe a randomly initialised network built from --config instead (the baseline).
    #[arg(long, requires = "config")]
    pub random_init: bool,
    /// Config for --random-init.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// "cached" (default: the fast probe on precomputed unaugmented features), "moco" (MoCo's
    /// linear evaluation: augmented crops, SGD lr 30, batch 256, wd 0, 100 epochs, lr x0.1 at
    /// 60 and 80) or "swav" (SwAV's: augmented crops, SGD lr 0.3, batch 32, wd 1e-6, 100
    /// epochs, cosine).
    #[arg(long, default_value = "cached")]
    pub protocol: String,
    /// Settings of the cached-features probe: "moco" (lr 30, 100 epochs, steps at 60/80) or
    /// "swav" (lr 0.3, cosine). Default: moco for MoCo runs, swav otherwise.
    #[arg(long)]
    pub preset: Option<String>,
    /// Probe epochs (default: the preset's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Probe learning rate (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Dataset folder, if not where the run found it.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Override a key of the config, e.g. --set device=cuda. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where to write the result as JSON, with the probe's wall time (loading excluded), peak
    /// memory and machine (default:
    /// linear.json / linear-PROTOCOL.json in the run folder when the checkpoint is a run's
    /// checkpoints/last.safetensors, else nowhere).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The options of `unmix bench pipeline`.
#[derive(clap::Args)]
pub struct BenchPipelineArgs {
    /// A CIFAR-10 binary folder (cifar-10-batches-bin) or a folder of photos.
    #[arg(long, value_name = "DIR")]
    pub source: PathBuf,
    /// Output side of the crops (32 for CIFAR, 224 for ImageNet).
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Samples per run (the source repeated).
    #[arg(long, default_value_t = 10240)]
    pub images: usize,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Worker threads preparing batches.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Decode the photos once and keep them in memory (measures the augmentations alone).
    #[arg(long)]
    pub in_memory: bool,
}

/// The options of `unmix bench step`.
#[derive(clap::Args)]
pub struct BenchStepArgs {
    /// "fmnist" (the protocol's net) or "cifar-resnet18" (ResNet-18, CIFAR stem, 3x32x32).
    #[arg(long, default_value = "fmnist")]
    pub model: String,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// "fp32" or "bf16".
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Config overrides, e.g. --set model.memory_format=\"contiguous\".
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Record the timed steps with libtorch's profiler into this Chrome trace (JSON);
    /// bench/profile_summary.py groups its time by kind.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

/// The options of `unmix bench peak`.
#[derive(clap::Args)]
pub struct BenchPeakArgs {
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seconds each measurement repeats for.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
}

/// The options of `unmix bench loop`.
#[derive(clap::Args)]
pub struct BenchLoopArgs {
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
    #[command(flatten)]
    pub run: BenchData,
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// Config overrides, e.g. --set model.memory_format=\"channels-last\".
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// The options of `unmix bench knn`.
#[derive(clap::Args)]
pub struct BenchKnnArgs {
    #[command(flatten)]
    pub run: BenchData,
}

/// The options of `unmix bench folder`.
#[derive(clap::Args)]
pub struct BenchFolderArgs {
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Batches timed after the first.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

/// The options of `unmix bench knn-bank`.
#[derive(clap::Args)]
pub struct BenchKnnBankArgs {
    #[arg(long, default_value_t = 1_281_167)]
    pub bank: i64,
    #[arg(long, default_value_t = 10_000)]
    pub queries: i64,
    #[arg(long, default_value_t = 128)]
    pub dim: i64,
    #[arg(long, default_value_t = 1000)]
    pub classes: i64,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// The options of `unmix bench scale-plot`.
#[derive(clap::Args)]
pub struct BenchScalePlotArgs {
    #[arg(long, value_name = "FILE")]
    pub record: PathBuf,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The machine, for the titles.
    #[arg(long)]
    pub machine: String,
}
