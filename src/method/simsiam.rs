//! SimSiam (Chen & He 2021): one encoder with projector and predictor; each view's prediction
//! regresses the other view's projection with stop-gradient; negative cosine, symmetric.
//!
//! Un-Mix the way the authors describe it for BYOL (SimSiam is BYOL without the target network):
//! the symmetric loss between the mixture and the unmixed view 2, weighted lam, and with the
//! mixture's outputs reversed, weighted 1 - lam; stop-gradient on every projection used as target.

use super::losses::negative_cosine;
use super::{method_settings, Method, StepInfo};
use crate::mix::{MixTarget, Mixture};
use crate::model::{Encoder, Head, ResNetConfig};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

method_settings! {
    /// SimSiam's `[method]` keys (`name = "simsiam"`).
    pub struct SimSiamConfig {
        /// Hidden width of the predictor MLP (with batch norm; 512 in the paper).
        #[serde(default)]
        pub predictor_hidden: i64,
    }
}

impl SimSiamConfig {
    pub fn validate(&self) -> Result<()> {
        if self.predictor_hidden <= 0 || self.predictor_hidden > super::MAX_WIDTH {
            bail!(
                "method.predictor_hidden = {} must be positive (and at most 65536) for SimSiam (e.g. 512 as in the paper)",
                self.predictor_hidden
            );
        }
        Ok(())
    }
}

pub struct SimSiam {
    mix_target: MixTarget,
    vs: nn::VarStore,
    net: Encoder,
    predictor: Head,
    feats: Option<Tensor>,
}

impl SimSiam {
    pub fn new(device: Device, backbone: &ResNetConfig, cfg: SimSiamConfig, mix_target: MixTarget) -> Self {
        let vs = nn::VarStore::new(device);
        let projector = cfg.projector();
        let net = Encoder::new(&vs.root(), backbone, &projector.head());
        let predictor = Head::new(&(vs.root() / "predictor"), cfg.dim, &projector.predictor(cfg.predictor_hidden));
        SimSiam { mix_target, vs, net, predictor, feats: None }
    }

    /// (prediction, detached projection) of a batch.
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let z = self.net.forward_t(x, true);
        (self.predictor.forward_t(&z, true), z.detach())
    }
}

/// The symmetric SimSiam loss of two (prediction, stopped projection) pairs.
fn pair(a: &(Tensor, Tensor), b: &(Tensor, Tensor)) -> Tensor {
    (negative_cosine(&a.0, &b.1) + negative_cosine(&b.0, &a.1)) * 0.5
}

impl Method for SimSiam {
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
        let o1 = (self.predictor.forward_t(&z1, true), z1.detach());
        let o2 = self.forward(&views[1]);
        let mut loss = pair(&o1, &o2);
        if let Some(m) = mixed {
            let om = self.forward(&m.images);
            let t = if self.mix_target == MixTarget::View2 { &o2 } else { &o1 };
            loss = loss + m.term(|p| Ok(pair(&(p.arrange(&om.0), p.arrange(&om.1)), t)))?;
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
    fn projections_used_as_targets_are_stopped_and_unmix_is_weighted() {
        let backbone = ResNetConfig::tiny(1);
        let cfg = SimSiamConfig { dim: 8, mlp_hidden: 16, mlp_bn: true, mlp_layers: 2, predictor_hidden: 4 };
        let mut m = SimSiam::new(Device::Cpu, &backbone, cfg, MixTarget::View2);
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let (p, z) = m.forward(&x1);
        assert!(p.requires_grad() && !z.requires_grad(), "the target projection is detached");
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.7 });
        let (info, mut rng) = (StepInfo::default(), ChaCha8Rng::seed_from_u64(0));
        let base = m.loss(&[x1.shallow_clone(), x2.shallow_clone()], None, &info, &mut rng).unwrap().double_value(&[]);
        let with = m
            .loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed.clone().into()), &info, &mut rng)
            .unwrap()
            .double_value(&[]);
        let (om, o2) = (m.forward(&mixed.images), m.forward(&x2));
        let d = pair(&om, &o2).double_value(&[]);
        let r = pair(&(om.0.flip([0]), om.1.flip([0])), &o2).double_value(&[]);
        assert!((with - (base + 0.7 * d + 0.3 * r)).abs() < 1e-4);
    }
}
