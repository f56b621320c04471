//! MixCo (Kim et al., "MixCo: Mix-up Contrastive Learning for Visual Representation", 2020; the
//! authors' code sungnyun/MixCo-Mixup-Contrastive): the first half of the query batch (view 1) is
//! mixed with its second half, mixture i = lambda_i q_i + (1 - lambda_i) q_{i + N/2} for i < N/2
//! with lambda_i ~ U(0, 1); the N/2 mixtures are forwarded beside the N clean queries, scored
//! against the keys of the whole batch and the queue with the soft label lambda_i on key i and
//! 1 - lambda_i on key i + N/2 at their own temperature, and the term, times a weight, is added
//! to the method's loss. Mixtures never enter the queue.

use super::imix::mix_pairs;
use super::VirtualMix;
use anyhow::{bail, Result};
use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The `[mixco]` section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MixCoConfig {
    /// Train with MixCo (then `unmix.enabled = false`: one mixture per run).
    #[serde(default)]
    pub enabled: bool,
    /// Beta(alpha, alpha) for each mixture's lambda (1.0: uniform, the authors' draw).
    #[serde(default = "one")]
    pub alpha: f64,
    /// Temperature of the mixed logits (the authors' mix_T, 0.05 by default).
    #[serde(default = "d005")]
    pub temperature: f64,
    /// Weight of the mixed term (the authors' beta, 1.0).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}
fn d005() -> f64 {
    0.05
}

impl Default for MixCoConfig {
    fn default() -> Self {
        MixCoConfig { enabled: false, alpha: 1.0, temperature: 0.05, weight: 1.0 }
    }
}

impl MixCoConfig {
    /// Unchanged from the defaults (left out of written configs).
    pub fn is_default(&self) -> bool {
        *self == MixCoConfig::default()
    }

    pub fn validate(&self) -> Result<()> {
        for (key, v) in [("mixco.alpha", self.alpha), ("mixco.temperature", self.temperature)] {
            if !(v > 0.0 && v.is_finite()) {
                bail!("{key} = {v} must be a positive finite number");
            }
        }
        if !(self.weight >= 0.0 && self.weight.is_finite()) {
            bail!("mixco.weight = {} must be >= 0 and finite (1.0: the authors' beta)", self.weight);
        }
        Ok(())
    }
}

/// One step's MixCo mixtures of the query batch `x` (N, C, H, W; N even): N/2 lambdas drawn in
/// turn from `rng`.
pub fn draw(x: &Tensor, s: &MixCoConfig, rng: &mut impl Rng) -> Result<VirtualMix> {
    let n = x.size()[0];
    if n % 2 != 0 || n < 2 {
        bail!("MixCo mixes the two halves of the batch: a batch of {n} images does not split in two (train.drop_last = true keeps batches whole)");
    }
    let half = n / 2;
    let beta = Beta::new(s.alpha, s.alpha).expect("mixco.alpha validated positive");
    let lams: Vec<f64> = (0..half).map(|_| beta.sample(rng)).collect();
    let first: Vec<i64> = (0..half).collect();
    let second: Vec<i64> = (half..n).collect();
    let images = mix_pairs(x, &first, &second, &lams);
    Ok(VirtualMix {
        images,
        first,
        second,
        lams,
        replaces_view1: false,
        temperature: Some(s.temperature),
        weight: s.weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::{Device, Kind};

    #[test]
    fn the_first_half_mixes_with_the_second() {
        let x = Tensor::arange(6 * 4, (Kind::Double, Device::Cpu)).view([6, 1, 2, 2]);
        let s = MixCoConfig { enabled: true, ..Default::default() };
        let m = draw(&x, &s, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        assert_eq!((m.first.clone(), m.second.clone()), (vec![0, 1, 2], vec![3, 4, 5]));
        assert_eq!(m.images.size(), vec![3, 1, 2, 2]);
        for i in 0..3 {
            let expect = x.get(i) * m.lams[i as usize] + x.get(i + 3) * (1.0 - m.lams[i as usize]);
            assert!((m.images.get(i) - expect).abs().max().double_value(&[]) < 1e-12);
        }
        assert!(!m.replaces_view1 && m.temperature == Some(0.05) && m.weight == 1.0);
        let e = draw(&x.narrow(0, 0, 5), &s, &mut ChaCha8Rng::seed_from_u64(2)).err().unwrap().to_string();
        assert!(e.contains("5 images"), "{e}");
    }
}
