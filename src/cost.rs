//! Counted compute, machine-independent: the backbone passes a training step makes per image of
//! its batch. A forward pass is 1, a forward plus backward 3 (backward costs about twice a
//! forward); momentum and target encoders run forward only. A pass over smaller crops (SwAV's
//! multi-crop) counts by its pixels relative to view 1's. MoCo is 4, MoCo + Un-Mix 7, SimCLR 6,
//! SimCLR + Un-Mix 9.
//!
//! Two ways to the same figure: [`passes_per_image`] from the config (what a run prints at its
//! start and a comparison matches arms by), and [`Tally`], what the backbones of a real step
//! counted (every training-mode backbone forward reports itself to it); a test holds them equal
//! for every method with and without each mixture.

use crate::config::Config;
use crate::method::MethodConfig;
pub use crate::model::tally::Tally;

/// Backbone passes per image of a step of this config (see the module's head), from the method,
/// its options and the mixture.
pub fn passes_per_image(cfg: &Config) -> f64 {
    let small = small_crop_share(cfg);
    // The base method: 3 per view the trained encoder sees, 1 per view a frozen encoder sees.
    let base = match &cfg.method {
        MethodConfig::Moco(m) => 4.0 * if m.symmetric { 2.0 } else { 1.0 },
        // Online network on both views, the EMA target forward on both (+ Un-Mix: 12).
        MethodConfig::Byol(_) => 8.0,
        // Two large crops and the small ones, all trained.
        MethodConfig::Swav(_) => 6.0 + 3.0 * small * cfg.augment.small_crops as f64,
        MethodConfig::Simclr(_)
        | MethodConfig::Simsiam(_)
        | MethodConfig::Barlow(_)
        | MethodConfig::Vicreg(_)
        | MethodConfig::Wmse(_) => 6.0,
    };
    base + mixture_passes(cfg, small)
}

/// What the configured mixture adds to a step: Un-Mix forwards (and trains through) the mixture
/// of view 1 once (BYOL's symmetric term also through its target network, forward only), and
/// SwAV's mixtures of every second small crop; i-Mix mixes the query batch in place (nothing
/// added); MixCo forwards N/2 mixtures with the queries.
fn mixture_passes(cfg: &Config, small: f64) -> f64 {
    use crate::mix::MixtureKind;
    match (cfg.mixture_kind(), &cfg.method) {
        (MixtureKind::None | MixtureKind::IMix, _) => 0.0,
        (MixtureKind::MixCo, _) => 1.5,
        (MixtureKind::UnMix, MethodConfig::Byol(_)) => 4.0,
        (MixtureKind::UnMix, MethodConfig::Swav(_)) => 3.0 + 3.0 * small * cfg.augment.small_crops.div_ceil(2) as f64,
        // Symmetric MoCo forwarding the mixture in each direction's term: twice.
        (MixtureKind::UnMix, MethodConfig::Moco(m)) if m.symmetric && m.unmix_pass_per_direction => 6.0,
        (MixtureKind::UnMix, _) => 3.0,
    }
}

/// A small crop's pixels over view 1's (0 without small crops).
fn small_crop_share(cfg: &Config) -> f64 {
    match &cfg.augment.small {
        Some(s) if cfg.augment.small_crops > 0 && cfg.augment.view1.crop_size > 0 => {
            (s.crop_size as f64 / cfg.augment.view1.crop_size as f64).powi(2)
        }
        _ => 0.0,
    }
}

/// One arm's counted compute: passes per image, steps, images per step.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// Backbone passes per image of a step ([`passes_per_image`]).
    pub passes_per_image: f64,
    /// Optimizer steps of the run (planned).
    pub steps: u64,
    /// Images per step over all processes.
    pub batch: u64,
}

impl Cost {
    /// The run's cost under `cfg` over `steps` steps of `processes` processes.
    pub fn of(cfg: &Config, steps: usize, processes: usize) -> Cost {
        Cost {
            passes_per_image: passes_per_image(cfg),
            steps: steps as u64,
            batch: (cfg.train.batch_size * processes) as u64,
        }
    }

    /// One line for the start of a run: passes per image, and the whole run's image-passes.
    pub fn describe(&self) -> String {
        format!(
            "{} backbone passes per image per step (forward 1, forward + backward 3), x {} steps x {} images = {} M image-passes",
            fmt_passes(self.passes_per_image),
            self.steps,
            self.batch,
            fmt_compute(self.mega_image_passes())
        )
    }

    /// Passes x images over the whole run, in millions (the compute axis of the tables and plots).
    pub fn mega_image_passes(&self) -> f64 {
        self.passes_per_image * (self.steps * self.batch) as f64 / 1e6
    }
}

/// Passes per image as written in tables: whole numbers without a fraction (7, 5.5, 6.75).
pub fn fmt_passes(p: f64) -> String {
    let s = format!("{p:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A compute figure to three significant digits (4193.28 -> "4193", 4.19328 -> "4.19",
/// 0.003584 -> "0.00358").
pub fn fmt_compute(x: f64) -> String {
    if !(x > 0.0 && x.is_finite()) {
        return format!("{x}");
    }
    let decimals = (2 - x.log10().floor() as i64).max(0) as usize;
    format!("{x:.decimals$}")
}

/// The whole steps whose counted compute at `passes` per image comes closest to `target_passes`
/// per image over `target_steps` steps (the same batch): `round(target_steps x target_passes /
/// passes)`, at least 1.
pub fn matched_steps(target_steps: u64, target_passes: f64, passes: f64) -> u64 {
    ((target_steps as f64 * target_passes / passes).round() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::step::Trainer;
    use tch::{Device, Kind, Tensor};

    /// The passes one real training step of `config` with `sets` counts, per image.
    fn counted(config: &str, sets: &[&str]) -> (f64, f64) {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let cfg = Config::load(std::path::Path::new(config), &sets).unwrap();
        let mut trainer = Trainer::new(&cfg, Device::Cpu, None, 10).unwrap();
        let n = cfg.train.batch_size as i64;
        let view = |side: usize| Tensor::randn([n, 1, side as i64, side as i64], (Kind::Float, Device::Cpu));
        let mut views = vec![view(28), view(28)];
        if let Some(small) = &cfg.augment.small {
            views.extend((0..cfg.augment.small_crops).map(|_| view(small.crop_size)));
        }
        let tally = Tally::start();
        let _loss = trainer.forward(&views, 0, 0).unwrap();
        (tally.per_image(n, 28, 28), passes_per_image(&cfg))
    }

    #[test]
    fn every_method_counts_the_passes_its_step_makes() {
        // (config, overrides, passes per image): each method alone and with each mixture it takes,
        // pinned, and equal to what the backbones counted in a real step.
        let off = "unmix.enabled=false";
        let small = ["augment.small_crops=2", "augment.small={crop_size=14, crop_scale=[0.05, 0.14]}"];
        let cases: Vec<(&str, Vec<&str>, f64)> = vec![
            ("moco", vec![off], 4.0),
            ("moco", vec![], 7.0),
            ("moco", vec![off, "method.symmetric=true"], 8.0),
            // Symmetric: the mixture is forwarded once and scored in both directions.
            ("moco", vec!["method.symmetric=true"], 11.0),
            // ... or, as the authors' CIFAR code, forwarded again for the second direction: the
            // query encoder's batch norm updates 4 times a step instead of 3.
            ("moco", vec!["method.symmetric=true", "method.unmix_pass_per_direction=true"], 14.0),
            ("moco", vec![off, "imix.enabled=true"], 4.0),
            ("moco", vec![off, "mixco.enabled=true"], 5.5),
            ("simclr", vec![off], 6.0),
            ("simclr", vec![], 9.0),
            ("simclr", vec![off, "imix.enabled=true"], 6.0),
            // BYOL: the online network trains on both views, the target sees both forward only;
            // its symmetric Un-Mix term also needs the target's projection of the mixture.
            ("byol", vec![off], 8.0),
            ("byol", vec![], 12.0),
            ("simsiam", vec![off], 6.0),
            ("simsiam", vec![], 9.0),
            ("swav", vec![off], 6.0),
            ("swav", vec![], 9.0),
            // Two small crops of 14 px (a quarter of view 1's pixels each); Un-Mix mixes the first.
            ("swav", [&[off][..], &small[..]].concat(), 7.5),
            ("swav", small.to_vec(), 11.25),
            ("barlow", vec![off], 6.0),
            ("barlow", vec![], 9.0),
            ("vicreg", vec![off], 6.0),
            ("vicreg", vec![], 9.0),
            ("wmse", vec![off], 6.0),
            ("wmse", vec![], 9.0),
        ];
        for (method, sets, pinned) in cases {
            let config = format!("configs/fmnist-{method}-unmix.toml");
            // A small batch (SimSiam splits batch norm into 32 groups; W-MSE whitens groups of 128
            // rows: it keeps 256).
            let batch = if method == "wmse" { "train.batch_size=256" } else { "train.batch_size=64" };
            let all: Vec<&str> = [&[batch][..], &sets[..]].concat();
            let (tally, formula) = counted(&config, &all);
            assert_eq!(formula, pinned, "{method} {sets:?}: the formula");
            assert_eq!(tally, pinned, "{method} {sets:?}: the passes a real step made");
        }
    }

    #[test]
    fn matching_rounds_to_whole_steps() {
        // MoCo + Un-Mix (7) for 2340 steps is the base method (4) for 4095 steps, exactly.
        assert_eq!(matched_steps(2340, 7.0, 4.0), 4095);
        // Down: 2340 x 4 / 7 = 1337.14.. -> 1337; MixCo (5.5): 2340 x 7 / 5.5 = 2978.18.. -> 2978.
        assert_eq!(matched_steps(2340, 4.0, 7.0), 1337);
        assert_eq!(matched_steps(2340, 7.0, 5.5), 2978);
        let c = Cost { passes_per_image: 7.0, steps: 2340, batch: 256 };
        assert!((c.mega_image_passes() - 7.0 * 2340.0 * 256.0 / 1e6).abs() < 1e-9);
        assert_eq!((fmt_passes(7.0), fmt_passes(5.5), fmt_passes(6.375)), ("7".into(), "5.5".into(), "6.375".into()));
        assert_eq!([4193.28, 4.19328, 0.003584].map(fmt_compute), ["4193", "4.19", "0.00358"]);
        assert!(c.describe().starts_with("7 backbone passes per image per step"), "{}", c.describe());
        assert!(c.describe().ends_with("x 2340 steps x 256 images = 4.19 M image-passes"), "{}", c.describe());
    }
}
