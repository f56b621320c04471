//! The commands that read a trained network: `knn`, `linear`, `embed`, `export` and `report`.

use super::args::{EmbedArgs, ExportArgs, KnnArgs, LinearArgs, ReportArgs};
use super::outputs::{network, new_output, not_over_a_checkpoint, run_folder, with_data, writable};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use unmix::build::LoadedRun;
use unmix::eval::knn::KnnData;
use unmix::eval::protocol::{Protocol, ProtocolConfig};
use unmix::say;

/// `unmix knn`: a checkpoint's (or a random network's) kNN, or the raw pixels'.
pub fn knn(a: KnnArgs) -> Result<i32> {
    let mut set = a.set;
    if let Some(k) = a.k {
        set.push(format!("eval.knn_k={k}"));
    }
    if let Some(t) = a.t {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--t {t}: the kNN temperature must be a positive finite number (e.g. 0.1)");
        }
        set.push(format!("eval.knn_t={t}"));
    }
    let set = with_data(set, a.data);
    if a.raw_pixels {
        let config = a.config.as_deref().expect("clap: --raw-pixels requires --config");
        let cfg = unmix::config::Config::load(config, &set)?;
        let device = unmix::build::runtime(&cfg)?;
        let r = KnnData::load(&cfg)?.evaluate_raw_pixels(&cfg, device)?;
        let protocol = unmix::eval::knn::raw_pixels_protocol(&cfg, &r);
        say!("kNN top-1: {:.2}%  top-5: {:.2}%  (raw pixels; {protocol})", r.top1, r.top5);
        return Ok(0);
    }
    let run = network(a.checkpoint.as_deref(), a.config.as_deref(), &set)?;
    let r = KnnData::load(&run.cfg)?.evaluate(&run.cfg, run.device, run.method.as_ref())?;
    let protocol = unmix::eval::knn::protocol(&run.cfg, &r);
    say!("kNN top-1: {:.2}%  top-5: {:.2}%  ({}; {protocol})", r.top1, r.top5, run.describe());
    Ok(0)
}

/// `unmix linear`: the options checked and the output placed before any training, then the
/// probe of the chosen protocol, its record written beside the run.
pub fn linear(a: LinearArgs) -> Result<i32> {
    let paper = linear_protocol(&a)?;
    let name = if paper.is_some() { format!("linear-{}.json", a.protocol) } else { "linear.json".to_string() };
    let out = a.out.clone().or_else(|| a.checkpoint.as_deref().and_then(run_folder).map(|d| d.join(&name)));
    if let (Some(o), Some(p)) = (&out, &a.checkpoint) {
        not_over_a_checkpoint(o, p)?;
    }
    if let Some(o) = &out {
        writable(o)?;
    }
    let run = network(a.checkpoint.as_deref(), a.config.as_deref(), &with_data(a.set.clone(), a.data.clone()))?;
    let started = std::time::Instant::now();
    let mut record = match paper {
        Some(p) => paper_probe(&run, p, &a)?,
        None => cached_probe(&run, &a)?,
    };
    // Its cost and machine beside the accuracy, under a pretraining summary's names; the time
    // counts the probe (features, training, testing), not loading the checkpoint.
    record["wall_seconds"] = started.elapsed().as_secs_f64().into();
    record["peak_rss_mib"] = unmix::train::summary::peak_rss_mib().into();
    record["machine"] = unmix::train::summary::machine().into();
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

/// The paper protocol `--protocol` names (None: the cached-features probe), with the options
/// that go with it checked.
fn linear_protocol(a: &LinearArgs) -> Result<Option<Protocol>> {
    let paper = match a.protocol.as_str() {
        "cached" => None,
        p => Some(Protocol::parse(p).with_context(|| format!("--protocol {p}: use \"cached\", \"moco\" or \"swav\""))?),
    };
    if paper.is_some() && a.preset.is_some() {
        bail!(
            "--preset sets the cached-features probe; --protocol {} has its own settings (change them with --epochs and --lr)",
            a.protocol
        );
    }
    if a.epochs == Some(0) {
        bail!("--epochs must be at least 1");
    }
    if let Some(l) = a.lr.filter(|l| !(*l > 0.0 && l.is_finite())) {
        bail!("--lr {l}: the learning rate must be a positive finite number");
    }
    Ok(paper)
}

/// The papers' linear evaluation (augmented crops through the frozen backbone every epoch).
fn paper_probe(run: &LoadedRun, p: Protocol, a: &LinearArgs) -> Result<serde_json::Value> {
    let mut pc = ProtocolConfig::new(p);
    pc.epochs = a.epochs.unwrap_or(pc.epochs);
    pc.lr = a.lr.unwrap_or(pc.lr);
    pc.seed = run.cfg.seed;
    let (r, description) = unmix::eval::protocol::evaluate(&run.cfg, run.device, run.method.as_ref(), &pc, true)?;
    say!(
        "linear top-1 ({} protocol): best {:.2}% at epoch {} of {} (the number the authors' script reports), \
         last epoch {:.2}% (top-5 {:.2}%); {}",
        a.protocol,
        r.best_top1,
        r.best_epoch,
        pc.epochs,
        r.last_top1,
        r.last_top5,
        run.describe_backbone()
    );
    Ok(
        serde_json::json!({"protocol": a.protocol, "description": description, "epoch": run.epoch, "settings": pc, "result": r}),
    )
}

/// The fast probe on features computed once from the unaugmented train split.
fn cached_probe(run: &LoadedRun, a: &LinearArgs) -> Result<serde_json::Value> {
    let (r, pc, protocol) = unmix::eval::linear::cached(run, a.preset.as_deref(), a.epochs, a.lr)?;
    say!(
        "linear top-1: {:.2}%  top-5: {:.2}%  (train top-1 {:.2}%; {}; {protocol})",
        r.top1,
        r.top5,
        r.train_top1,
        run.describe_backbone()
    );
    Ok(
        serde_json::json!({"top1": r.top1, "top5": r.top5, "train_top1": r.train_top1, "epoch": run.epoch, "probe": pc, "protocol": protocol}),
    )
}

/// `unmix embed`.
pub fn embed(a: EmbedArgs) -> Result<i32> {
    let which = match a.features.as_str() {
        "backbone" => unmix::method::Features::Backbone,
        "head" => unmix::method::Features::Head,
        f => bail!("--features {f}: use \"backbone\" or \"head\""),
    };
    let split = match a.split.as_str() {
        "train" => unmix::export::EmbedSplit::Train,
        "test" => unmix::export::EmbedSplit::Test,
        "images" => unmix::export::EmbedSplit::Images,
        s => bail!("--split {s}: use \"train\", \"test\" or \"images\""),
    };
    not_over_a_checkpoint(&a.out, &a.checkpoint)?;
    new_output(&a.out, a.force)?;
    writable(&a.out)?;
    let run = LoadedRun::from_checkpoint(&a.checkpoint, &with_data(vec![], a.data))?;
    let (shape, list) = unmix::export::write_embeddings(&run, split, which, &a.out)?;
    say!("wrote {} (numpy.load: `embeddings` {shape:?} float32, `labels` int64)", a.out.display());
    if let Some(list) = list {
        say!("wrote {} (the image files, one per line, in the embeddings' order)", list.display());
    }
    Ok(0)
}

/// `unmix export`.
pub fn export(a: ExportArgs) -> Result<i32> {
    if a.format != "safetensors" {
        bail!("--format {}: only \"safetensors\" is supported", a.format);
    }
    let out: PathBuf = match a.out {
        Some(o) => o,
        None => run_folder(&a.checkpoint).map(|d| d.join("backbone.safetensors")).with_context(|| {
            format!(
                "{} is not in a run folder (RUN/checkpoints/last.safetensors): give --out FILE",
                a.checkpoint.display()
            )
        })?,
    };
    not_over_a_checkpoint(&out, &a.checkpoint)?;
    new_output(&out, a.force)?;
    writable(&out)?;
    say!("{}", unmix::export::export(&a.checkpoint, &out)?.trim_end());
    Ok(0)
}

/// `unmix report`.
pub fn report(a: ReportArgs) -> Result<i32> {
    let out = unmix::report::write_report(&a.run)?;
    say!("wrote {}", out.display());
    Ok(0)
}
