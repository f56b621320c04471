//! Barlow Twins and VICReg: one encoder with a projector, a loss on the two views' embeddings
//! that needs no negatives and no target network (feature decorrelation / variance-invariance-
//! covariance).
//!
//! Un-Mix: the loss pairs row i of one batch with row i of the other, so the mixture's embeddings
//! are scored against view 2's with weight lam, and reversed against view 2's with weight 1 - lam,
//! through the shared [`Mixed::term`].

use super::losses::{barlow_twins, vicreg};
use super::{method_settings, Method, StepInfo};
use crate::mix::{MixTarget, Mixture};
use crate::model::{head::HeadConfig, Encoder, ResNetConfig};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

method_settings! {
    /// Barlow Twins' `[method]` keys (`name = "barlow"`).
    pub struct BarlowConfig {
        /// Weight of the off-diagonal terms.
        #[serde(default = "d00051")]
        pub barlow_lambda: f64,
        /// Factor on the whole loss (solo-learn's `scale_loss`, 0.1 in its CIFAR recipe).
        #[serde(default = "one")]
        pub barlow_scale: f64,
    }
}

method_settings! {
    /// VICReg's `[method]` keys (`name = "vicreg"`).
    pub struct VicRegConfig {
        /// Invariance, variance and covariance weights.
        #[serde(default = "default_vicreg")]
        pub vicreg_weights: [f64; 3],
    }
}

fn d00051() -> f64 {
    0.0051
}
fn one() -> f64 {
    1.0
}
fn default_vicreg() -> [f64; 3] {
    [25.0, 25.0, 1.0]
}

impl BarlowConfig {
    pub fn validate(&self) -> Result<()> {
        let lambda_ok = self.barlow_lambda >= 0.0 && self.barlow_lambda.is_finite();
        let scale_ok = self.barlow_scale > 0.0 && self.barlow_scale.is_finite();
        if !lambda_ok || !scale_ok {
            bail!(
                "method.barlow_lambda = {} must be >= 0 and method.barlow_scale = {} > 0, both finite",
                self.barlow_lambda,
                self.barlow_scale
            );
        }
        Ok(())
    }

    pub fn loss(&self) -> RedundancyLoss {
        RedundancyLoss::BarlowTwins { lambda: self.barlow_lambda, scale: self.barlow_scale }
    }
}

impl VicRegConfig {
    pub fn validate(&self) -> Result<()> {
        if self.vicreg_weights.iter().any(|w| !(*w >= 0.0 && w.is_finite())) {
            bail!("method.vicreg_weights = {:?} must be finite and >= 0", self.vicreg_weights);
        }
        Ok(())
    }

    pub fn loss(&self) -> RedundancyLoss {
        let [sim, var, cov] = self.vicreg_weights;
        RedundancyLoss::VicReg { sim, var, cov }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RedundancyLoss {
    /// Barlow Twins with its off-diagonal weight lambda, the whole loss times `scale`.
    BarlowTwins { lambda: f64, scale: f64 },
    /// VICReg with its invariance, variance and covariance weights.
    VicReg { sim: f64, var: f64, cov: f64 },
}

impl RedundancyLoss {
    pub fn eval(&self, a: &Tensor, b: &Tensor) -> Tensor {
        match *self {
            RedundancyLoss::BarlowTwins { lambda, scale } => barlow_twins(a, b, lambda) * scale,
            RedundancyLoss::VicReg { sim, var, cov } => vicreg(a, b, sim, var, cov),
        }
    }
}

pub struct Redundancy {
    loss: RedundancyLoss,
    mix_target: MixTarget,
    vs: nn::VarStore,
    net: Encoder,
    feats: Option<Tensor>,
}

impl Redundancy {
    pub fn new(
        device: Device,
        backbone: &ResNetConfig,
        head: &HeadConfig,
        loss: RedundancyLoss,
        mix_target: MixTarget,
    ) -> Self {
        let vs = nn::VarStore::new(device);
        let net = Encoder::new(&vs.root(), backbone, head);
        Redundancy { loss, mix_target, vs, net, feats: None }
    }
}

impl Method for Redundancy {
    super::single_store_parts!(net);

    fn loss(
        &mut self,
        views: &[Tensor],
        mixture: Option<&Mixture>,
        _info: &StepInfo,
        _rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Tensor> {
        let mixed = mixture.and_then(Mixture::unmix);
        let (f1, z1) = self.net.forward_parts(&views[0], true);
        self.feats = Some(f1.detach());
        let z2 = self.net.forward_t(&views[1], true);
        let mut loss = self.loss.eval(&z1, &z2);
        if let Some(m) = mixed {
            let zm = self.net.forward_t(&m.images, true);
            let target = if self.mix_target == MixTarget::View2 { &z2 } else { &z1 };
            loss = loss + m.term(|p| Ok(self.loss.eval(&p.arrange(&zm), target)))?;
        }
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind, Mixed};
    use rand::SeedableRng;
    use tch::Kind;

    #[test]
    fn unmix_weighting_for_barlow_twins_and_vicreg() {
        let backbone = ResNetConfig::tiny(1);
        // The three-layer projector of the Barlow Twins / VICReg recipes.
        let head = HeadConfig { dim: 8, hidden: 16, bn: true, layers: 3 };
        for loss in [
            RedundancyLoss::BarlowTwins { lambda: 0.01, scale: 0.1 },
            RedundancyLoss::VicReg { sim: 25.0, var: 25.0, cov: 1.0 },
        ] {
            let mut m = Redundancy::new(Device::Cpu, &backbone, &head, loss, MixTarget::View2);
            let x1 = Tensor::randn([6, 1, 8, 8], (Kind::Float, Device::Cpu));
            let x2 = Tensor::randn([6, 1, 8, 8], (Kind::Float, Device::Cpu));
            let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.2 });
            let (info, mut rng) = (StepInfo::default(), ChaCha8Rng::seed_from_u64(0));
            let base =
                m.loss(&[x1.shallow_clone(), x2.shallow_clone()], None, &info, &mut rng).unwrap().double_value(&[]);
            let with = m
                .loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed.clone().into()), &info, &mut rng)
                .unwrap()
                .double_value(&[]);
            let zm = m.net.forward_t(&mixed.images, true);
            let z2 = m.net.forward_t(&x2, true);
            let expect = base
                + 0.2 * loss.eval(&zm, &z2).double_value(&[])
                + 0.8 * loss.eval(&zm.flip([0]), &z2).double_value(&[]);
            assert!((with - expect).abs() < 1e-3 * expect.abs().max(1.0), "{loss:?}: {with} vs {expect}");
        }
        // Barlow Twins' scale multiplies the whole loss.
        let (a, b) =
            (Tensor::randn([6, 4], (Kind::Float, Device::Cpu)), Tensor::randn([6, 4], (Kind::Float, Device::Cpu)));
        let scaled = RedundancyLoss::BarlowTwins { lambda: 0.01, scale: 0.1 }.eval(&a, &b).double_value(&[]);
        let plain = barlow_twins(&a, &b, 0.01).double_value(&[]);
        assert!(plain > 0.0 && (scaled - 0.1 * plain).abs() < 1e-6 * plain, "{scaled} vs {plain}");
    }
}
