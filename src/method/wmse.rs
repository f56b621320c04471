//! W-MSE (Ermolov et al., ICML 2021): the embeddings of each view are whitened (in random groups
//! of `w_size` samples, `w_iter` times per step) and pulled together with the normalized MSE;
//! whitening keeps them from collapsing without negatives or a target network. The base the
//! Un-Mix authors used for some CIFAR / STL-10 / Tiny ImageNet results.
//!
//! Un-Mix: the mixture's embeddings are whitened with the same groups (on their own statistics)
//! and scored against view 2's whitened embeddings with the normalized MSE, weight lam, and in
//! reversed order, weight 1 - lam, through the shared [`Mixed::loss`]. Reversing the whitened
//! outputs equals whitening the reversed mixture exactly when one group covers the batch
//! (`w_size` = batch size); with smaller groups the partner's row was whitened in its own group.

use super::losses::{normalized_mse, whiten_groups};
use super::{Method, MixTarget, StepInfo};
use crate::mix::Mixed;
use crate::model::{head::HeadConfig, Encoder, ResNetConfig};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct WmseConfig {
    pub head: HeadConfig,
    /// Rows per whitening group (must exceed the embedding dimension).
    pub w_size: i64,
    /// Whitening draws per step.
    pub w_iter: usize,
    /// Shrinkage of the covariance towards the identity.
    pub eps: f64,
    pub mix_target: MixTarget,
}

pub struct Wmse {
    cfg: WmseConfig,
    vs: nn::VarStore,
    net: Encoder,
    feats: Option<Tensor>,
}

impl Wmse {
    pub fn new(device: Device, backbone: &ResNetConfig, cfg: WmseConfig) -> Self {
        let vs = nn::VarStore::new(device);
        let net = Encoder::new(&vs.root(), backbone, &cfg.head);
        Wmse { cfg, vs, net, feats: None }
    }

    /// A random partition of `0..n` into groups of `w_size` (the last rows are left out when
    /// `w_size` does not divide `n`, as a `view(-1, w_size)` of a permutation cannot hold them).
    fn groups(&self, n: i64, rng: &mut ChaCha8Rng, device: Device) -> Vec<Tensor> {
        let mut perm: Vec<i64> = (0..n).collect();
        perm.shuffle(rng);
        perm.chunks_exact(self.cfg.w_size as usize).map(|c| Tensor::from_slice(c).to_device(device)).collect()
    }
}

/// The normalized MSE over the rows covered by the groups.
fn covered_nmse(a: &Tensor, b: &Tensor, groups: &[Tensor]) -> Tensor {
    let idx = Tensor::cat(groups, 0);
    normalized_mse(&a.index_select(0, &idx), &b.index_select(0, &idx))
}

impl Method for Wmse {
    super::single_store_parts!(net);

    fn loss(&mut self, views: &[Tensor], mixed: Option<&Mixed>, _info: &StepInfo, rng: &mut ChaCha8Rng) -> anyhow::Result<Tensor> {
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
            let w1 = whiten_groups(&part(0), &groups, self.cfg.eps);
            let w2 = whiten_groups(&part(1), &groups, self.cfg.eps);
            loss = loss + covered_nmse(&w1, &w2, &groups) / iters;
            if let Some(m) = mixed {
                let wm = whiten_groups(&part(2), &groups, self.cfg.eps);
                let target = if self.cfg.mix_target == MixTarget::View2 { &w2 } else { &w1 };
                loss = loss + m.loss(&wm, |o| covered_nmse(o, target, &groups)) / iters;
            }
        }
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind};
    use crate::model::Arch;
    use rand::SeedableRng;

    fn wmse(w_size: i64) -> Wmse {
        let backbone = ResNetConfig { arch: Arch::ResNet18, widths: [4, 4, 8, 8], in_channels: 1, cifar_stem: true, bn_splits: 1, conv_init: Default::default(), channels_last: false, ..Default::default() };
        let cfg = WmseConfig { head: HeadConfig { dim: 4, hidden: 16, bn: true, layers: 2 }, w_size, w_iter: 1, eps: 0.0, mix_target: MixTarget::View2 };
        Wmse::new(Device::Cpu, &backbone, cfg)
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
        let with = m.loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed), &info, &mut rng).unwrap().double_value(&[]);
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
