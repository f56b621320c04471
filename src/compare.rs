//! `unmix compare`: named arms on the same seeds, everything else equal, with counted compute
//! beside every accuracy: the base method, + Un-Mix, the rival mixtures (i-Mix, MixCo), and any
//! of them matched to another's compute (`base@unmix`: the base method for as many steps as make
//! its counted cost equal to Un-Mix's at the config's epochs). The table gives each arm's cost,
//! training time and kNN (head output and pooled backbone, mean +- std over the seeds) and the
//! per-seed paired differences to a reference arm with the 95 % confidence interval of their mean
//! (Student t over the seeds), and the plot kNN against counted compute.
//!
//! Runs are long, so a comparison can be stopped and started again with the same command: a
//! finished arm is read back from its run folder, an interrupted one resumes from its last
//! checkpoint, and a folder holding a run of another configuration is refused.

use crate::checkpoint::{self, RUN_CHECKPOINT};
use crate::config::Config;
use crate::cost::{fmt_compute, fmt_passes, matched_steps, passes_per_image, Cost};
use crate::mix::MixtureKind;
use crate::train::{pretrain, Finished, RunOptions};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// The 95 % confidence interval of the mean of `v` (Student t with n - 1 degrees of freedom);
/// None for fewer than two values.
pub fn ci95(v: &[f64]) -> Option<(f64, f64)> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    if v.len() < 2 {
        return None;
    }
    let (m, s) = mean_std(v);
    let t = StudentsT::new(0.0, 1.0, (v.len() - 1) as f64).ok()?.inverse_cdf(0.975);
    let half = t * s / (v.len() as f64).sqrt();
    Some((m - half, m + half))
}

/// One arm of a comparison, as written on the command line: a mixture ("base", "unmix", "imix",
/// "mixco"), optionally `@` another whose counted compute at the config's epochs it is given.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmSpec {
    pub mixture: MixtureKind,
    pub matched_to: Option<MixtureKind>,
}

const ARM_NAMES: &str = "base, unmix, imix or mixco, optionally @ another (base@unmix)";

fn mixture_named(name: &str) -> Result<MixtureKind> {
    Ok(match name {
        "base" => MixtureKind::None,
        "unmix" => MixtureKind::UnMix,
        "imix" => MixtureKind::IMix,
        "mixco" => MixtureKind::MixCo,
        other => bail!("--arms: \"{other}\" is not an arm; use {ARM_NAMES}"),
    })
}

fn arm_word(k: MixtureKind) -> &'static str {
    match k {
        MixtureKind::None => "base",
        other => other.name(),
    }
}

impl std::str::FromStr for ArmSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<ArmSpec> {
        let (arm, matched) = match s.trim().split_once('@') {
            Some((a, b)) => (a, Some(mixture_named(b.trim())?)),
            None => (s.trim(), None),
        };
        let mixture = mixture_named(arm.trim())?;
        if matched == Some(mixture) {
            bail!("--arms: \"{s}\" matches an arm to itself; write \"{}\"", arm_word(mixture));
        }
        Ok(ArmSpec { mixture, matched_to: matched })
    }
}

impl std::fmt::Display for ArmSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.matched_to {
            Some(m) => write!(f, "{}@{}", arm_word(self.mixture), arm_word(m)),
            None => f.write_str(arm_word(self.mixture)),
        }
    }
}

/// Parses `--arms` ("base,unmix,base@unmix"): at least one arm, each once.
pub fn parse_arms(list: &str) -> Result<Vec<ArmSpec>> {
    let arms: Vec<ArmSpec> = list.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect::<Result<_>>()?;
    if arms.is_empty() {
        bail!("--arms is empty; name the arms, e.g. --arms base,unmix,base@unmix");
    }
    for (i, a) in arms.iter().enumerate() {
        if arms[..i].contains(a) {
            bail!("--arms names {a} twice");
        }
    }
    Ok(arms)
}

/// `cfg` training with `mixture` (the others off; Un-Mix's own settings kept as the config has them).
fn with_mixture(cfg: &Config, mixture: MixtureKind) -> Config {
    let mut c = cfg.clone();
    c.unmix.enabled = mixture == MixtureKind::UnMix;
    c.imix.enabled = mixture == MixtureKind::IMix;
    c.mixco.enabled = mixture == MixtureKind::MixCo;
    c
}

/// The arm's config (its seed set by the caller) and, for a matched arm, the sentence that says
/// how its steps were chosen. `per_epoch`: steps per epoch of the config's data and batch.
pub fn arm_config(cfg: &Config, arm: &ArmSpec, per_epoch: usize) -> (Config, Option<String>) {
    let mut c = with_mixture(cfg, arm.mixture);
    let Some(target) = arm.matched_to else { return (c, None) };
    let t = with_mixture(cfg, target);
    let target_steps = (cfg.train.epochs * per_epoch) as u64;
    let (p_arm, p_target) = (passes_per_image(&c), passes_per_image(&t));
    let steps = matched_steps(target_steps, p_target, p_arm) as usize;
    c.train.steps = steps;
    c.train.epochs = steps.div_ceil(per_epoch);
    let note = format!(
        "{arm}: {steps} steps ({:.2} epochs) at {} passes per image = the counted compute of {} over {} epochs ({target_steps} steps at {}), ratio {:.4} (whole steps)",
        steps as f64 / per_epoch as f64,
        fmt_passes(p_arm),
        arm_word(target),
        cfg.train.epochs,
        fmt_passes(p_target),
        steps as f64 * p_arm / (target_steps as f64 * p_target),
    );
    (c, Some(note))
}

/// The arm's run in `dir`: read back when finished, resumed when interrupted, trained otherwise.
/// A finished run is recognized by its summary and resolved config alone (its checkpoint may have
/// been moved away to keep only the records), so result folders can be kept without weights.
fn run_arm(cfg: &Config, dir: &Path, progress: bool) -> Result<(Value, bool)> {
    let same_config = |text: &str, origin: &str| -> Result<()> {
        let saved = Config::from_saved_toml(text, origin, &[])?;
        if saved != cfg.with_absolute_root() {
            bail!(
                "{} holds a run of another configuration than this comparison's arm; give another --out, or move that folder away",
                dir.display()
            );
        }
        Ok(())
    };
    if let Some(summary) = finished_summary(cfg, dir) {
        let saved = dir.join("config.toml");
        let text = std::fs::read_to_string(&saved).with_context(|| format!("cannot read {}", saved.display()))?;
        same_config(&text, &saved.display().to_string())?;
        crate::say!("   finished earlier: kNN top-1 {:.2}%", summary["knn"]["top1"].as_f64().unwrap_or(f64::NAN));
        return Ok((summary, false));
    }
    let ckpt = dir.join(RUN_CHECKPOINT);
    let resume = ckpt.exists();
    if resume {
        let meta = checkpoint::read_meta(&ckpt)?;
        same_config(&meta.config, &format!("the config saved in {}", ckpt.display()))?;
        crate::say!(
            "   resuming {} from its checkpoint at step {} ({} of {} epochs finished)",
            dir.display(),
            meta.step,
            meta.epoch,
            cfg.train.epochs
        );
    }
    // A folder without a checkpoint holds a run that never finished an epoch: moved aside.
    let opts = RunOptions { out: dir.to_path_buf(), resume, force: !resume, progress, ..Default::default() };
    match pretrain(cfg, &opts)? {
        Finished::Main(summary) => Ok((serde_json::to_value(summary)?, true)),
        Finished::Worker { rank, .. } => bail!("unmix compare runs in one process (this is rank {rank} of several)"),
        Finished::AlreadyFinished { .. } => bail!("{} finished training but its summary.json has no kNN readout of this arm; move it away to train it again", dir.display()),
        Finished::Stopped { reason, epoch, step, .. } => bail!(
            "{reason}: the comparison stopped in {} at step {step} (epoch {}), with a checkpoint; run the same command again to continue",
            dir.display(),
            epoch + 1
        ),
    }
}

/// The summary of the finished run of this arm in `dir` (one with its kNN readout and the arm's
/// epochs), if there is one.
fn finished_summary(cfg: &Config, dir: &Path) -> Option<Value> {
    std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .filter(|s| s["knn"]["top1"].is_f64() && s["epochs"].as_u64() == Some(cfg.train.epochs as u64))
}

/// Refuses, before anything trains, a comparison whose runs would span machine classes: when a
/// run is still to train here and a finished one (read back from its summary) ran on another
/// class, the paired differences would carry the classes' rounding difference. The error names
/// the run, both classes and the ways on; `--allow-mixed-machines` goes on regardless.
fn check_one_machine_class(o: &CompareOptions, runs: &[(Config, PathBuf)]) -> Result<()> {
    use crate::train::summary::{machine, machine_class};
    let finished: Vec<(&Path, Option<Value>)> =
        runs.iter().map(|(c, dir)| (dir.as_path(), finished_summary(c, dir))).collect();
    if o.allow_mixed_machines || finished.iter().all(|(_, s)| s.is_some()) {
        return Ok(());
    }
    let here = machine_class(&machine());
    // The class a run last trained on: a finished one's summary, an interrupted one's checkpoint.
    let trained_on = |dir: &Path, summary: &Option<Value>| -> Option<String> {
        match summary {
            Some(s) => s["machine"].as_str().map(machine_class),
            None => checkpoint::read_meta(&dir.join(RUN_CHECKPOINT)).ok()?.machines.last().map(|m| machine_class(m)),
        }
    };
    let elsewhere = finished.iter().find_map(|(dir, s)| {
        let class = trained_on(dir, s)?;
        (class != here).then_some((dir, class))
    });
    if let Some((dir, class)) = elsewhere {
        bail!(
            "{} trained on another machine class ({class}) than this one ({here}), and this comparison still has runs to train: \
             they would be paired across two classes, whose fp32 kernels round differently (runs repeat exactly only within \
             a class). Run the comparison on a machine of that class, or move the finished run folders away to train every \
             arm here, or pass --allow-mixed-machines to pair across classes (the table then lists each run's machine)",
            dir.display()
        );
    }
    Ok(())
}

/// One finished run of an arm.
#[derive(Clone, Debug)]
struct Run {
    seed: u64,
    /// kNN top-1 of the configured readout, and of each readout where the summary has it.
    top1: f64,
    head: Option<f64>,
    backbone: Option<f64>,
    images_per_second: f64,
    train_seconds: f64,
    /// Whether this invocation trained it (false: read back from a finished run folder).
    trained_now: bool,
    /// The machine line of its summary (absent in summaries of earlier versions).
    machine: Option<String>,
    /// Its machine class, or its classes joined by ", then " when a resume changed the class.
    class: Option<String>,
    /// (compute in M image-passes, kNN top-1 of the configured readout) at each evaluated epoch.
    curve: Vec<(f64, f64)>,
}

/// An arm with its cost and finished runs.
struct ArmResult {
    spec: ArmSpec,
    cost: Cost,
    runs: Vec<Run>,
}

impl ArmResult {
    fn readout(&self, which: Readout) -> Vec<Option<f64>> {
        self.runs.iter().map(|r| which.of(r)).collect()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Readout {
    Head,
    Backbone,
}

impl Readout {
    fn of(self, r: &Run) -> Option<f64> {
        match self {
            Readout::Head => r.head,
            Readout::Backbone => r.backbone,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Readout::Head => "head output",
            Readout::Backbone => "pooled backbone",
        }
    }
}

/// What `compare` is asked to run.
pub struct CompareOptions<'a> {
    pub arms: &'a [ArmSpec],
    /// The arm the paired differences are taken against (one of `arms`).
    pub reference: &'a ArmSpec,
    pub seeds: usize,
    pub out: &'a Path,
    pub progress: bool,
    /// Pair runs of different machine classes instead of refusing to (see `check_one_machine_class`).
    pub allow_mixed_machines: bool,
}

/// Runs every arm on `seeds` seeds (config seed, +1, ...; one seed's arms back to back) under
/// `out/` (folders `ARM-seedS`), and writes `compare.md`, `compare.json` and `compare.png` there.
/// Returns the markdown.
pub fn compare(cfg: &Config, o: &CompareOptions) -> Result<String> {
    if cfg.train.steps > 0 {
        bail!("unmix compare sets each arm's length from train.epochs; remove train.steps = {}", cfg.train.steps);
    }
    if !o.arms.contains(o.reference) {
        bail!("--reference {} is not one of --arms", o.reference);
    }
    std::fs::create_dir_all(o.out).with_context(|| format!("cannot create {}", o.out.display()))?;
    let per_epoch = steps_per_epoch(cfg)?;
    let mut arms: Vec<ArmResult> = o
        .arms
        .iter()
        .map(|spec| {
            let (c, note) = arm_config(cfg, spec, per_epoch);
            if let Some(n) = note {
                crate::say!("{n}");
            }
            let cost = Cost::of(&c, c.total_steps(per_epoch), 1);
            ArmResult { spec: spec.clone(), cost, runs: Vec::new() }
        })
        .collect();
    let seed_runs = |arm: &ArmResult| -> Vec<(Config, PathBuf)> {
        (0..o.seeds as u64)
            .map(|s| {
                let (mut c, _) = arm_config(cfg, &arm.spec, per_epoch);
                c.seed = cfg.seed + s;
                let dir = o.out.join(format!("{}-seed{}", arm.spec, c.seed));
                (c, dir)
            })
            .collect()
    };
    let all: Vec<(Config, PathBuf)> = arms.iter().flat_map(seed_runs).collect();
    check_one_machine_class(o, &all)?;
    for s in 0..o.seeds {
        for (k, arm) in arms.iter_mut().enumerate() {
            let (c, dir) = &all[k * o.seeds + s];
            crate::say!("== {} seed {} -> {}", arm.spec, c.seed, dir.display());
            let (summary, trained_now) = run_arm(c, dir, o.progress)?;
            arm.runs.push(read_run(c, &summary, dir, &arm.cost, trained_now)?);
        }
    }
    let md = table(cfg, o, &arms);
    write(o.out, "compare.md", &md)?;
    write(o.out, "compare.json", &serde_json::to_string_pretty(&record(cfg, o, &arms))?)?;
    plot(cfg, o, &arms)?;
    Ok(md)
}

/// Steps per epoch of the config's training set and batch (one process).
fn steps_per_epoch(cfg: &Config) -> Result<usize> {
    let n = crate::data::load_pretrain(cfg)?.len();
    let per_epoch = unmix_data::loader::num_batches(n, cfg.train.batch_size, cfg.train.drop_last);
    if per_epoch == 0 {
        bail!("{n} training images give no full batch of train.batch_size = {}", cfg.train.batch_size);
    }
    Ok(per_epoch)
}

fn write(out: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::write(out.join(name), text).with_context(|| format!("cannot write {}", out.join(name).display()))
}

/// A finished run's figures from its summary, and its kNN curve against counted compute from its
/// metrics.jsonl.
fn read_run(cfg: &Config, summary: &Value, dir: &Path, cost: &Cost, trained_now: bool) -> Result<Run> {
    let top1 = summary["knn"]["top1"].as_f64().context("the run reported no kNN accuracy")?;
    let configured = |f: crate::model::Features| (cfg.eval.features == f).then_some(top1);
    let head = summary["knn_head"]["top1"].as_f64().or(configured(crate::model::Features::Head));
    let backbone = summary["knn_backbone"]["top1"]
        .as_f64()
        .or(configured(crate::model::Features::Backbone))
        .or_else(|| backbone_knn_file(cfg, dir));
    let per_step = cost.passes_per_image * cost.batch as f64 / 1e6;
    let curve = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| Some((r["step"].as_f64()? * per_step, r["knn_top1"].as_f64()?)))
        .collect();
    Ok(Run {
        seed: cfg.seed,
        top1,
        head,
        backbone,
        images_per_second: summary["images_per_second"].as_f64().unwrap_or(f64::NAN),
        train_seconds: summary["train_seconds"].as_f64().unwrap_or(f64::NAN),
        trained_now,
        machine: summary["machine"].as_str().map(str::to_string),
        class: run_class(summary),
        curve,
    })
}

/// The machine class of a run, or its classes joined by ", then " when a resume changed the class
/// (such a run is a class of its own in the table).
fn run_class(summary: &Value) -> Option<String> {
    use crate::train::summary::machine_class;
    let all: Vec<String> = summary["machines"]
        .as_array()
        .map(|v| v.iter().filter_map(|m| m.as_str()).map(machine_class).collect())
        .unwrap_or_default();
    if all.len() > 1 {
        return Some(all.join(", then "));
    }
    summary["machine"].as_str().map(machine_class)
}

/// The pooled-backbone kNN top-1 of a run whose summary predates the two readouts, from the
/// `knn-backbone.txt` that scripts/seed-table.sh wrote beside it (`unmix knn --checkpoint ...
/// --set 'eval.features="backbone"'` on its last checkpoint), when that line's protocol is this
/// config's: the final epoch, cosine kNN with the same k and temperature, pooled backbone features.
fn backbone_knn_file(cfg: &Config, dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("knn-backbone.txt")).ok()?;
    knn_line_top1(&text, cfg.train.epochs, cfg.eval.knn_k, cfg.eval.knn_t)
}

fn knn_line_top1(text: &str, epoch: usize, k: usize, t: f64) -> Option<f64> {
    let same = [
        format!("(epoch {epoch}; "),
        format!("weighted kNN (cosine, k {k}, t {t}) on the L2-normalized pooled backbone features"),
    ];
    if !same.iter().all(|s| text.contains(s.as_str())) {
        return None;
    }
    text.trim_start().strip_prefix("kNN top-1: ")?.split('%').next()?.parse().ok()
}

fn pm(v: &[f64]) -> String {
    match v.len() {
        0 => "-".into(),
        1 => format!("{:.2}", v[0]),
        _ => {
            let (m, s) = mean_std(v);
            format!("{m:.2} +- {s:.2}")
        }
    }
}

/// The machine classes of the runs, in order of first use, each with its runs ("base seed 0");
/// runs whose summaries name no machine (earlier versions) are left out.
fn machine_classes(arms: &[ArmResult]) -> Vec<(String, Vec<String>)> {
    let mut classes: Vec<(String, Vec<String>)> = Vec::new();
    for a in arms {
        for r in &a.runs {
            let Some(class) = r.class.clone() else { continue };
            let run = format!("{} seed {}", a.spec, r.seed);
            match classes.iter_mut().find(|c| c.0 == class) {
                Some(c) => c.1.push(run),
                None => classes.push((class, vec![run])),
            }
        }
    }
    classes
}

/// The table's machine sentence: the one class, or every class with its runs and a warning, and
/// how many runs name no machine.
fn machines_sentence(arms: &[ArmResult]) -> String {
    let classes = machine_classes(arms);
    let unrecorded = arms.iter().flat_map(|a| &a.runs).filter(|r| r.class.is_none()).count();
    let unrecorded = match unrecorded {
        0 => String::new(),
        n => format!(" The machine of {n} run(s) is not recorded (summaries of an earlier version)."),
    };
    if classes.len() <= 1 {
        let class = classes.first().map_or("not recorded", |c| c.0.as_str());
        let which = if unrecorded.is_empty() { "every run" } else { "every run that records it" };
        return format!("Machine class of {which}: {class}.{unrecorded}");
    }
    let list: Vec<String> = classes.iter().map(|(c, runs)| format!("{c} ({})", runs.join(", "))).collect();
    format!(
        "**The runs span {} machine classes**, whose fp32 kernels round differently, so the paired differences carry \
         that difference too: {}.{unrecorded}",
        classes.len(),
        list.join("; ")
    )
}

/// Per-seed differences of `arm` minus the reference in one readout (seeds where both have it).
fn paired(arm: &ArmResult, reference: &ArmResult, which: Readout) -> Vec<f64> {
    arm.readout(which).iter().zip(reference.readout(which)).filter_map(|(a, r)| Some((*a)? - r?)).collect()
}

fn protocol(cfg: &Config, o: &CompareOptions) -> String {
    format!(
        "{} on {}, {} epochs at the reference's compute, {}, weighted kNN k {} t {}, top-1 (%) on the test split, seeds {}..{}",
        cfg.method.name(),
        cfg.data.dataset,
        cfg.train.epochs,
        cfg.train.precision.name(),
        cfg.eval.knn_k,
        cfg.eval.knn_t,
        cfg.seed,
        cfg.seed + o.seeds as u64 - 1
    )
}

/// The markdown: arms with cost, time and both readouts, then the paired differences to the
/// reference with their 95 % intervals.
fn table(cfg: &Config, o: &CompareOptions, arms: &[ArmResult]) -> String {
    let reference = arms.iter().find(|a| &a.spec == o.reference).expect("checked to be an arm");
    let ref_compute = reference.cost.mega_image_passes();
    let mut md = format!(
        "# Comparison at counted compute\n\n{}\n\n{}\n\nCost: backbone passes per image per step (forward 1, forward + backward 3; \
         target encoders forward only); compute = passes x steps x batch, against `{}`.\n\n\
         | arm | passes / image | steps | compute (M image-passes) | x {} | train min (mean) | kNN head | kNN backbone |\n\
         |---|---|---|---|---|---|---|---|\n",
        protocol(cfg, o),
        machines_sentence(arms),
        o.reference,
        o.reference
    );
    for a in arms {
        let mins: Vec<f64> = a.runs.iter().map(|r| r.train_seconds / 60.0).collect();
        let some = |w: Readout| a.readout(w).into_iter().flatten().collect::<Vec<f64>>();
        md += &format!(
            "| {} | {} | {} | {} | {:.3} | {:.1} | {} | {} |\n",
            a.spec,
            fmt_passes(a.cost.passes_per_image),
            a.cost.steps,
            fmt_compute(a.cost.mega_image_passes()),
            a.cost.mega_image_passes() / ref_compute,
            mean_std(&mins).0,
            pm(&some(Readout::Head)),
            pm(&some(Readout::Backbone)),
        );
    }
    md += &format!(
        "\n## Paired differences to `{}` (same seed; mean and 95 % confidence interval, Student t over the seeds)\n\n\
         | arm | readout | per seed | mean | 95 % CI | CI excludes 0 |\n|---|---|---|---|---|---|\n",
        o.reference
    );
    for a in arms.iter().filter(|a| &a.spec != o.reference) {
        for w in [Readout::Head, Readout::Backbone] {
            let d = paired(a, reference, w);
            if d.is_empty() {
                continue;
            }
            let per_seed: Vec<String> = d.iter().map(|x| format!("{x:+.2}")).collect();
            let (ci, excludes) = match ci95(&d) {
                Some((lo, hi)) => (format!("[{lo:+.2}, {hi:+.2}]"), if lo > 0.0 || hi < 0.0 { "yes" } else { "no" }),
                None => ("n/a (1 seed)".into(), "-"),
            };
            md += &format!(
                "| {} | {} | {} | {:+.2} | {ci} | {excludes} |\n",
                a.spec,
                w.name(),
                per_seed.join(" / "),
                mean_std(&d).0
            );
        }
    }
    md
}

fn record(cfg: &Config, o: &CompareOptions, arms: &[ArmResult]) -> Value {
    let reference = arms.iter().find(|a| &a.spec == o.reference).expect("checked to be an arm");
    let stats = |v: Vec<f64>| {
        let (m, s) = mean_std(&v);
        json!({"mean": m, "std": s, "n": v.len()})
    };
    let arms_json: Vec<Value> = arms
        .iter()
        .map(|a| {
            let runs: Vec<Value> = a
                .runs
                .iter()
                .map(|r| {
                    json!({"seed": r.seed, "knn_top1": r.top1, "knn_head": r.head, "knn_backbone": r.backbone,
                           "images_per_second": r.images_per_second, "train_seconds": r.train_seconds,
                           "trained_now": r.trained_now, "machine": r.machine, "class": r.class})
                })
                .collect();
            let paired_json: Vec<Value> = [Readout::Head, Readout::Backbone]
                .into_iter()
                .map(|w| {
                    let d = paired(a, reference, w);
                    json!({"readout": w.name(), "per_seed": d, "mean": mean_std(&d).0, "ci95": ci95(&d)})
                })
                .collect();
            json!({
                "arm": a.spec.to_string(),
                "cost": a.cost,
                "mega_image_passes": a.cost.mega_image_passes(),
                "knn_head": stats(a.readout(Readout::Head).into_iter().flatten().collect()),
                "knn_backbone": stats(a.readout(Readout::Backbone).into_iter().flatten().collect()),
                "runs": runs,
                "paired_difference_to_reference": paired_json,
            })
        })
        .collect();
    json!({
        "protocol": protocol(cfg, o),
        "method": cfg.method.name(),
        "epochs": cfg.train.epochs,
        "reference": o.reference.to_string(),
        "machine_classes": machine_classes(arms)
            .into_iter()
            .map(|(class, runs)| json!({"class": class, "runs": runs}))
            .collect::<Vec<Value>>(),
        "arms": arms_json,
    })
}

/// compare.png: each arm's kNN (the configured readout, mean over the seeds that reached each
/// evaluation) against counted compute.
fn plot(cfg: &Config, o: &CompareOptions, arms: &[ArmResult]) -> Result<()> {
    let names: Vec<String> = arms.iter().map(|a| a.spec.to_string()).collect();
    let curves: Vec<(&str, Vec<(f64, f64)>)> = arms
        .iter()
        .zip(&names)
        .map(|(a, name)| {
            let mut points: Vec<(f64, Vec<f64>)> = Vec::new();
            for (x, y) in a.runs.iter().flat_map(|r| r.curve.iter()) {
                match points.iter_mut().find(|p| (p.0 - x).abs() < 1e-9) {
                    Some(p) => p.1.push(*y),
                    None => points.push((*x, vec![*y])),
                }
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (name.as_str(), points.into_iter().map(|(x, ys)| (x, mean_std(&ys).0)).collect())
        })
        .collect();
    crate::report::plot::curves_plot(
        &o.out.join("compare.png"),
        &format!("kNN against counted compute: {} on {}, {} seed(s)", cfg.method.name(), cfg.data.dataset, o.seeds),
        "counted compute (M image-passes)",
        "kNN top-1 (%)",
        &curves,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[7.0]), (7.0, 0.0));
    }

    #[test]
    fn student_t_interval_says_which_gains_exclude_zero() {
        // The seed table's MoCo gain (+0.69 / +0.85 / +0.48): mean 0.673, sd 0.186, t(2) 4.303,
        // half-width 4.303 x 0.186 / sqrt(3) = 0.461: [0.21, 1.13], excludes 0.
        let (lo, hi) = ci95(&[0.69, 0.85, 0.48]).unwrap();
        assert!((lo - 0.2124).abs() < 1e-3 && (hi - 1.1343).abs() < 1e-3, "[{lo}, {hi}]");
        // SimCLR's (+0.19 / +0.61 / +0.06): mean 0.287, sd 0.287, half-width 0.714: includes 0.
        let (lo, hi) = ci95(&[0.19, 0.61, 0.06]).unwrap();
        assert!(lo < 0.0 && hi > 0.0 && (hi - lo - 2.0 * 0.7142).abs() < 1e-3, "[{lo}, {hi}]");
        // Two values: t(1) = 12.706; one value: no interval.
        let (lo, hi) = ci95(&[1.0, 3.0]).unwrap();
        assert!((hi - 2.0 - 12.7062).abs() < 1e-3 && (lo - 2.0 + 12.7062).abs() < 1e-3);
        assert!(ci95(&[1.0]).is_none());
    }

    #[test]
    fn backbone_knn_is_read_from_the_seed_tables_line_only_under_the_same_protocol() {
        // The line `unmix knn` wrote for the 50-epoch MoCo pair's base run (results/fmnist-seeds).
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("results/fmnist-seeds/moco-50ep/base-seed0/knn-backbone.txt"),
        )
        .unwrap();
        assert_eq!(knn_line_top1(&text, 50, 200, 0.1), Some(84.72));
        assert_eq!(knn_line_top1(&text, 10, 200, 0.1), None, "another epoch");
        assert_eq!(knn_line_top1(&text, 50, 20, 0.1), None, "another k");
        assert_eq!(knn_line_top1(&text, 50, 200, 0.07), None, "another temperature");
        let head = text.replace("pooled backbone features", "128-d head output");
        assert_eq!(knn_line_top1(&head, 50, 200, 0.1), None, "the head's readout");
    }

    #[test]
    fn arms_parse_and_name_themselves() {
        let arms = parse_arms("base, unmix,base@unmix,imix@unmix,unmix@base").unwrap();
        let names: Vec<String> = arms.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["base", "unmix", "base@unmix", "imix@unmix", "unmix@base"]);
        assert_eq!(arms[2], ArmSpec { mixture: MixtureKind::None, matched_to: Some(MixtureKind::UnMix) });
        let err = |s: &str| parse_arms(s).unwrap_err().to_string();
        assert!(err("base,cutmix").contains("\"cutmix\" is not an arm"), "{}", err("base,cutmix"));
        assert!(err("unmix@unmix").contains("to itself"));
        assert!(err("base,base").contains("twice"));
        assert!(err(" , ").contains("empty"));
    }
}
