//! W-MSE (Ermolov et al., ICML 2021): the embeddings of each view are whitened (in random groups
//! of `w_size` samples, `w_iter` times per step) and pulled together with the normalized MSE;
//! whitening keeps them from collapsing without negatives or a target network. The base the
//! Un-Mix authors used for some CIFAR / STL-10 / Tiny ImageNet results.
//!
//! Un-Mix: the mixture's embeddings are whitened with the same groups (on their own statistics)
//! and scored against view 2's whitened embeddings with the normalized MSE, weight lam, and in
//! reversed order, weight 1 - lam, through the shared [`Mixed::term`]. Reversing the whitened
//! outputs equals whitening the reversed mixture exactly when one group covers the batch
//! (`w_size` = batch size); with smaller groups the partner's row was whitened in its own group.

use super::losses::{normalized_mse, whiten_groups};
use super::{method_settings, Method, RunContext, StepInfo};
use crate::mix::{MixTarget, Mixture};
use crate::model::{Encoder, ResNetConfig};
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

method_settings! {
    /// W-MSE's `[method]` keys (`name = "wmse"`).
    pub struct WmseConfig {
        /// Rows per whitening group (0 = the whole batch; must exceed method.dim).
        #[serde(default)]
        pub w_size: i64,
        /// Whitening draws per step.
        #[serde(default = "one")]
        pub w_iter: usize,
        /// Shrinkage of the covariance towards the identity.
        #[serde(default)]
        pub w_eps: f64,
    }
}

fn one() -> usize {
    1
}

impl WmseConfig {
    /// Rows per whitening group for a batch of `batch` rows.
    pub fn group_size(&self, batch: i64) -> i64 {
        if self.w_size == 0 {
            batch
        } else {
            self.w_size
        }
    }

    pub fn validate(&self, ctx: &RunContext) -> Result<()> {
        let b = ctx.batch_size as i64;
        let w = self.group_size(b);
        if w <= self.dim || b % w != 0 {
            bail!(
                "method.w_size = {w} must exceed method.dim = {} (whitening needs more rows than dimensions) and divide train.batch_size = {b}",
                self.dim
            );
        }
        if self.w_iter == 0 || self.w_iter > 1000 || !(0.0..1.0).contains(&self.w_eps) {
            bail!("method.w_iter must be in 1..=1000 and method.w_eps in [0, 1)");
        }
        // Un-Mix's mixup rows i and N-1-i coincide at lam = 0.5, so a group that covers the
        // whole mixed batch holds only w/2 distinct rows: singular when w/2 <= dim.
        if ctx.unmix.enabled && w == b && self.w_eps == 0.0 && w / 2 <= self.dim {
            bail!(
                "method.w_size = {w} = train.batch_size with Un-Mix whitens the whole mixed batch, whose mixup rows i and N-1-i \
                 coincide at lambda 0.5: {} distinct rows for method.dim = {} dimensions, a singular covariance and a NaN loss. \
                 Use train.batch_size >= 2 * method.w_size (random groups), method.w_size > 2 * method.dim, or method.w_eps > 0",
                w / 2,
                self.dim
            );
        }
        Ok(())
    }
}

pub struct Wmse {
    cfg: WmseConfig,
    /// Rows per whitening group (`w_size`, or the batch for 0).
    w_size: i64,
    mix_target: MixTarget,
    vs: nn::VarStore,
    net: Encoder,
    feats: Option<Tensor>,
}

impl Wmse {
    pub fn new(
        device: Device,
        backbone: &ResNetConfig,
        cfg: WmseConfig,
        batch_size: i64,
        mix_target: MixTarget,
    ) -> Self {
        let vs = nn::VarStore::new(device);
        let net = Encoder::new(&vs.root(), backbone, &cfg.projector().head());
        let w_size = cfg.group_size(batch_size);
        Wmse { cfg, w_size, mix_target, vs, net, feats: None }
    }

    /// A random partition of `0..n` into groups of `w_size` (the last rows are left out when
    /// `w_size` does not divide `n`, as a `view(-1, w_size)` of a permutation cannot hold them).
    fn groups(&self, n: i64, rng: &mut ChaCha8Rng, device: Device) -> Vec<Tensor> {
        let mut perm: Vec<i64> = (0..n).collect();
        perm.shuffle(rng);
        perm.chunks_exact(self.w_size as usize).map(|c| Tensor::from_slice(c).to_device(device)).collect()
    }
}

/// The normalized MSE over the rows covered by the groups.
fn covered_nmse(a: &Tensor, b: &Tensor, groups: &[Tensor]) -> Tensor {
    let idx = Tensor::cat(groups, 0);
    normalized_mse(&a.index_select(0, &idx), &b.index_select(0, &idx))
}

impl Method for Wmse {
    super::single_store_parts!(net);

    fn loss(
        &mut self,
        views: &[Tensor],
        mixture: Option<&Mixture>,
        _info: &StepInfo,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Tensor> {
        let mixed = mixture.and_then(Mixture::unmix);
        let b = views[0].size()[0];
        let mut inputs = vec![views[0].shallow_clone(), views[1].shallow_clone()];
        if let Some(m) = mixed {
            inputs.push(m.images.shallow_clone());
        }
        // One forward pass over both views (and the mixture), as the W-MSE code.
        let (f, z) = self.net.forward_parts(&Tensor::cat(&inputs, 0), true);
        self.feats = Some(f.narrow(0, 0, b).detach());
        let part = |k: i64| z.narrow(0, k * b, b);
        let mut loss = Tensor::zeros([], (Kind::Float, z.device()));
        let iters = self.cfg.w_iter as f64;
        for _ in 0..self.cfg.w_iter {
            let groups = self.groups(b, rng, z.device());
            let w1 = whiten_groups(&part(0), &groups, self.cfg.w_eps);
            let w2 = whiten_groups(&part(1), &groups, self.cfg.w_eps);
            loss = loss + covered_nmse(&w1, &w2, &groups) / iters;
            if let Some(m) = mixed {
                let wm = whiten_groups(&part(2), &groups, self.cfg.w_eps);
                let target = if self.mix_target == MixTarget::View2 { &w2 } else { &w1 };
                loss = loss + m.term(|p| Ok(covered_nmse(&p.arrange(&wm), target, &groups)))? / iters;
            }
        }
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind, Mixed};
    use rand::SeedableRng;

    fn wmse(w_size: i64) -> Wmse {
        let backbone = ResNetConfig::tiny(1);
        let cfg = WmseConfig { dim: 4, mlp_hidden: 16, mlp_bn: true, mlp_layers: 2, w_size, w_iter: 1, w_eps: 0.0 };
        Wmse::new(Device::Cpu, &backbone, cfg, 16, MixTarget::View2)
    }

    #[test]
    fn identical_views_give_zero_loss_and_unmix_weighting_holds() {
        let mut m = wmse(16);
        let x1 = Tensor::randn([16, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([16, 1, 8, 8], (Kind::Float, Device::Cpu));
        let info = StepInfo::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // Identical views: whitened embeddings agree, normalized MSE 0.
        let same = m.loss(&[x1.shallow_clone(), x1.shallow_clone()], None, &info, &mut rng).unwrap().double_value(&[]);
        assert!(same.abs() < 1e-4, "{same}");
        // Un-Mix term by hand (one group = the batch: order does not matter).
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.3 });
        let with = m
            .loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed.clone().into()), &info, &mut rng)
            .unwrap()
            .double_value(&[]);
        let z = m.net.forward_t(&Tensor::cat(&[&x1, &x2, &mixed.images], 0), true);
        let w = |k: i64| crate::method::losses::whiten(&z.narrow(0, 16 * k, 16), 0.0);
        let (w1, w2, wm) = (w(0), w(1), w(2));
        let nmse = |a: &Tensor, b: &Tensor| normalized_mse(a, b).double_value(&[]);
        let expect = nmse(&w1, &w2) + 0.3 * nmse(&wm, &w2) + 0.7 * nmse(&wm.flip([0]), &w2);
        assert!((with - expect).abs() < 1e-3, "{with} vs {expect}");
    }

    #[test]
    fn groups_partition_the_batch() {
        let m = wmse(8);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let g = m.groups(24, &mut rng, Device::Cpu);
        assert_eq!(g.len(), 3);
        let mut all: Vec<i64> = g.iter().flat_map(|t| Vec::<i64>::try_from(t).unwrap()).collect();
        all.sort();
        assert_eq!(all, (0..24).collect::<Vec<_>>());
    }
}
