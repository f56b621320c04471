//! i-Mix (Lee et al., "i-Mix: A Domain-Agnostic Strategy for Contrastive Representation
//! Learning", ICLR 2021; the authors' code kibok90/imix): the query batch (view 1) is mixed in
//! place, image i with a random partner perm(i) at its own lambda_i ~ Beta(alpha, alpha) folded to
//! max(lambda_i, 1 - lambda_i), and the mixed query is scored against the keys of the whole batch
//! (and the queue) with the virtual label lambda_i on key i and 1 - lambda_i on key perm(i). The
//! mixed loss replaces the method's clean query loss: no extra pass.

use super::VirtualMix;
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The `[imix]` section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IMixConfig {
    /// Train with i-Mix (then `unmix.enabled = false`: one mixture per run).
    #[serde(default)]
    pub enabled: bool,
    /// Beta(alpha, alpha) for each sample's lambda (the authors' CIFAR setting 1.0, ImageNet 0.2).
    #[serde(default = "one")]
    pub alpha: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for IMixConfig {
    fn default() -> Self {
        IMixConfig { enabled: false, alpha: 1.0 }
    }
}

impl IMixConfig {
    /// Unchanged from the defaults (left out of written configs, so runs without i-Mix write
    /// the same config.toml as before it existed).
    pub fn is_default(&self) -> bool {
        *self == IMixConfig::default()
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            bail!("imix.alpha = {} must be positive and finite (1.0: the authors' CIFAR setting)", self.alpha);
        }
        Ok(())
    }
}

/// One step's i-Mix of the query batch `x` (N, C, H, W), drawn from `rng` in this order: the
/// partner permutation (a shuffle of 0..N), then the N lambdas.
pub fn draw(x: &Tensor, s: &IMixConfig, rng: &mut impl Rng) -> VirtualMix {
    let n = x.size()[0];
    let mut perm: Vec<i64> = (0..n).collect();
    perm.shuffle(rng);
    let beta = Beta::new(s.alpha, s.alpha).expect("imix.alpha validated positive");
    let lams: Vec<f64> = (0..n)
        .map(|_| {
            let l: f64 = beta.sample(rng);
            l.max(1.0 - l)
        })
        .collect();
    let first: Vec<i64> = (0..n).collect();
    let images = mix_pairs(x, &first, &perm, &lams);
    VirtualMix { images, first, second: perm, lams, replaces_view1: true, temperature: None, weight: 1.0 }
}

/// `lams[i] * x[first[i]] + (1 - lams[i]) * x[second[i]]` for every i, in `x`'s precision.
pub(crate) fn mix_pairs(x: &Tensor, first: &[i64], second: &[i64], lams: &[f64]) -> Tensor {
    let idx = |v: &[i64]| Tensor::from_slice(v).to_device(x.device());
    let lam = Tensor::from_slice(lams).to_kind(x.kind()).to_device(x.device()).view([-1, 1, 1, 1]);
    x.index_select(0, &idx(first)) * &lam + x.index_select(0, &idx(second)) * (lam.neg() + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::{Device, Kind};

    #[test]
    fn each_sample_mixes_with_a_random_partner_at_its_folded_lambda() {
        let x = Tensor::arange(8 * 4, (Kind::Double, Device::Cpu)).view([8, 1, 2, 2]);
        let s = IMixConfig { enabled: true, alpha: 1.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let m = draw(&x, &s, &mut rng);
        // The draws in the stated order: the permutation, then the lambdas.
        let mut again = ChaCha8Rng::seed_from_u64(4);
        let mut perm: Vec<i64> = (0..8).collect();
        perm.shuffle(&mut again);
        assert_eq!(m.second, perm);
        let mut sorted = m.second.clone();
        sorted.sort();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>(), "the partners are a permutation");
        assert!(m.lams.iter().all(|&l| (0.5..=1.0).contains(&l)), "folded: {:?}", m.lams);
        assert!(m.lams.windows(2).any(|w| w[0] != w[1]), "one lambda per sample");
        for i in 0..8 {
            let expect = x.get(i) * m.lams[i as usize] + x.get(m.second[i as usize]) * (1.0 - m.lams[i as usize]);
            assert!((m.images.get(i) - expect).abs().max().double_value(&[]) < 1e-12, "sample {i}");
        }
        assert!(m.replaces_view1 && m.temperature.is_none() && m.weight == 1.0);
    }
}
