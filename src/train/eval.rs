//! The end-of-epoch evaluation of a run: kNN when due, the online probe, and the two readouts
//! at the end; and the check that the evaluation splits fit the training images.

use super::step::Trainer;
use super::summary::KnnSummary;
use crate::config::{Config, Dataset};
use crate::eval::knn::{KnnData, KnnResult};
use crate::eval::online::OnlineProbe;
use crate::model::Features;
use crate::say;
use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

/// The end-of-epoch evaluation: kNN when due, and the online probe's test accuracy.
pub(super) struct EpochEval {
    /// None without labeled images (an unlabeled folder without data.eval_root).
    pub knn: Option<KnnData>,
    pub probe: Option<OnlineProbe>,
    classes: i64,
    use_probe: bool,
}

impl EpochEval {
    pub(super) fn new(cfg: &Config) -> Result<EpochEval> {
        let knn = if crate::data::has_labels(cfg) { Some(KnnData::load(cfg)?) } else { None };
        let classes = knn.as_ref().map_or(0, |k| k.classes() as i64);
        // The probe learns from the pretraining images' labels: not for STL-10 (mostly
        // unlabeled), unlabeled folders, or a separate labeled folder.
        let use_probe = cfg.eval.online_probe
            && cfg.data.dataset != Dataset::Stl10
            && cfg.data.eval_root.is_none()
            && knn.as_ref().is_some_and(|k| !k.leave_one_out)
            && classes > 1;
        Ok(EpochEval { knn, probe: None, classes, use_probe })
    }

    /// One probe step on the step's (detached) view-1 features; the probe is built at the first
    /// step, from the checkpoint's tensors when resuming.
    pub(super) fn probe_step(
        &mut self,
        feats: Option<Tensor>,
        labels: &[u32],
        lr: f64,
        device: Device,
        resumed: &mut Option<Vec<(String, Tensor)>>,
    ) -> Result<()> {
        let (true, Some(f)) = (self.use_probe, feats.map(|f| f.to_kind(Kind::Float))) else { return Ok(()) };
        if self.probe.is_none() {
            let mut p = OnlineProbe::new(f.size()[1], self.classes, device);
            if let Some(s) = resumed.take() {
                p.load_state(&s).context("the checkpoint's online probe")?;
            }
            self.probe = Some(p);
        }
        let y = crate::eval::linear::labels_tensor(labels, device);
        let _ = self.probe.as_mut().expect("built above").step(&f, &y, lr);
        Ok(())
    }

    pub(super) fn knn(&self, cfg: &Config, device: Device, trainer: &Trainer) -> Result<Option<KnnResult>> {
        self.knn.as_ref().map(|k| k.evaluate(cfg, device, trainer.method.as_ref())).transpose()
    }

    /// The end of the run's two kNN readouts, head output and pooled backbone: the configured one
    /// already measured (`configured`), the other measured now, so a run's summary holds both.
    pub(super) fn readouts(
        &self,
        cfg: &Config,
        device: Device,
        trainer: &Trainer,
        configured: Option<&KnnResult>,
    ) -> Result<(Option<KnnSummary>, Option<KnnSummary>)> {
        let (Some(r), Some(k)) = (configured, &self.knn) else { return Ok((None, None)) };
        let mut other_cfg = cfg.clone();
        other_cfg.eval.features = match cfg.eval.features {
            Features::Head => Features::Backbone,
            Features::Backbone => Features::Head,
        };
        let other = k.evaluate(&other_cfg, device, trainer.method.as_ref())?;
        let (mine, other) = (KnnSummary::new(cfg, r), KnnSummary::new(&other_cfg, &other));
        Ok(match cfg.eval.features {
            Features::Head => (Some(mine), Some(other)),
            Features::Backbone => (Some(other), Some(mine)),
        })
    }

    pub(super) fn probe_accuracy(&mut self, cfg: &Config, device: Device, trainer: &Trainer) -> Result<Option<f64>> {
        let (Some(p), Some(knn)) = (&self.probe, &self.knn) else { return Ok(None) };
        if !p.is_finite() {
            say!(
                "warning: the online probe diverged (eval.online_probe_lr = {} is too large for these features); it is left out of this run",
                cfg.eval.online_probe_lr
            );
            (self.probe, self.use_probe) = (None, false);
            return Ok(None);
        }
        let test =
            crate::eval::embed_split(cfg, device, trainer.method.as_ref(), &knn.test, Features::Backbone, false)?;
        let y = crate::eval::linear::labels_tensor(&knn.test.labels, device);
        Ok(Some(crate::eval::linear::accuracy(&p.logits(&test), &y).0))
    }
}

/// The evaluation splits must be images of the training images' kind (the pretraining images
/// may be another folder than the labeled train split).
pub(super) fn check_splits(cfg: &Config, train: &crate::data::Split, knn: &KnnData) -> Result<()> {
    let place = format!("the training images and the test split of {} in {}", cfg.data.dataset, cfg.data.root);
    crate::data::same_kind(cfg, train, &knn.test, &place)
}
