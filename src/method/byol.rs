//! BYOL (Grill et al. 2020): online network (encoder, projector, predictor) regresses the target
//! network's projection of the other view; the target is an EMA of the online network with tau
//! rising from `tau_base` to 1 on a cosine schedule. Symmetric normalized-MSE loss.
//!
//! Un-Mix, as the authors describe it for BYOL: the symmetric loss between the mixture of view 1
//! and the unmixed view 2 (or view 1), weighted lam, plus the same with the mixture's outputs
//! reversed, weighted 1 - lam. Targets are never mixed and never receive gradient.

use super::losses::normalized_mse;
use super::{load_stores, method_settings, stores_state, Features, Method, StepInfo};
use crate::mix::{MixTarget, Mixture};
use crate::model::{ema_update, init_target, Encoder, Head, ResNetConfig};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

method_settings! {
    /// BYOL's `[method]` keys (`name = "byol"`).
    pub struct ByolConfig {
        /// Hidden width of the predictor MLP (with batch norm; 4096 in the paper).
        #[serde(default)]
        pub predictor_hidden: i64,
        /// Initial target momentum (0.99 in the paper); rises to 1 over training on a cosine.
        #[serde(default = "d099")]
        pub tau_base: f64,
    }
}

fn d099() -> f64 {
    0.99
}

impl ByolConfig {
    pub fn validate(&self) -> Result<()> {
        if self.predictor_hidden <= 0 || self.predictor_hidden > super::MAX_WIDTH {
            bail!(
                "method.predictor_hidden = {} must be positive (and at most 65536) for BYOL (e.g. 4096 as in the paper)",
                self.predictor_hidden
            );
        }
        if !(0.0..=1.0).contains(&self.tau_base) {
            bail!("method.tau_base = {} must be in [0, 1]", self.tau_base);
        }
        Ok(())
    }
}

pub struct Byol {
    cfg: ByolConfig,
    mix_target: MixTarget,
    vs: nn::VarStore,
    vs_t: nn::VarStore,
    online: Encoder,
    predictor: Head,
    target: Encoder,
    feats: Option<Tensor>,
}

/// BYOL's cosine target-momentum schedule: 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2.
pub fn tau(tau_base: f64, step: u64, total: u64) -> f64 {
    let frac = if total == 0 { 0.0 } else { step as f64 / total as f64 };
    1.0 - (1.0 - tau_base) * ((std::f64::consts::PI * frac).cos() + 1.0) / 2.0
}

impl Byol {
    pub fn new(device: Device, backbone: &ResNetConfig, cfg: ByolConfig, mix_target: MixTarget) -> Self {
        let vs = nn::VarStore::new(device);
        let mut vs_t = nn::VarStore::new(device);
        let projector = cfg.projector();
        let online = Encoder::new(&vs.root(), backbone, &projector.head());
        let predictor = Head::new(&(vs.root() / "predictor"), cfg.dim, &projector.predictor(cfg.predictor_hidden));
        let target = Encoder::new(&vs_t.root(), backbone, &projector.head());
        init_target(&mut vs_t, &vs);
        Byol { cfg, mix_target, vs, vs_t, online, predictor, target, feats: None }
    }

    fn predict(&self, x: &Tensor) -> Tensor {
        self.predictor.forward_t(&self.online.forward_t(x, true), true)
    }

    fn project_target(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.target.forward_t(x, true))
    }
}

impl Method for Byol {
    fn trainable(&self) -> &nn::VarStore {
        &self.vs
    }

    fn loss(
        &mut self,
        views: &[Tensor],
        mixture: Option<&Mixture>,
        _info: &StepInfo,
        _rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Tensor> {
        let mixed = mixture.and_then(Mixture::unmix);
        let (f1, z1) = self.online.forward_parts(&views[0], true);
        self.feats = Some(f1.detach());
        let (p1, p2) = (self.predictor.forward_t(&z1, true), self.predict(&views[1]));
        let (t1, t2) = (self.project_target(&views[0]), self.project_target(&views[1]));
        let mut loss = normalized_mse(&p1, &t2) + normalized_mse(&p2, &t1);
        if let Some(m) = mixed {
            let pm = self.predict(&m.images);
            let tm = self.project_target(&m.images);
            let (p, t) = if self.mix_target == MixTarget::View2 { (&p2, &t2) } else { (&p1, &t1) };
            // Symmetric: the mixture's prediction regresses the target's projection, and the
            // target's prediction the mixture's target projection.
            loss = loss
                + m.term(|pair| Ok(normalized_mse(&pair.arrange(&pm), t) + normalized_mse(p, &pair.arrange(&tm))))?;
        }
        Ok(loss)
    }

    fn after_step(&mut self, info: &StepInfo) {
        ema_update(&self.vs_t, &self.vs, tau(self.cfg.tau_base, info.step, info.total_steps));
    }

    fn to_double(&mut self) {
        self.vs.double();
        self.vs_t.double();
    }

    fn take_features(&mut self) -> Option<Tensor> {
        self.feats.take()
    }

    fn embed(&self, x: &Tensor, features: Features) -> Tensor {
        self.online.embed(x, features)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        stores_state(&[("q.", &self.vs), ("k.", &self.vs_t)])
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> anyhow::Result<()> {
        load_stores(&[("q.", &self.vs), ("k.", &self.vs_t)], state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind, Mixed};
    use crate::model::named_variables;
    use rand::SeedableRng;
    use tch::Kind;

    #[test]
    fn tau_schedule_goes_from_base_to_one() {
        assert!((tau(0.99, 0, 100) - 0.99).abs() < 1e-12);
        assert!((tau(0.99, 50, 100) - 0.995).abs() < 1e-12);
        assert!((tau(0.99, 100, 100) - 1.0).abs() < 1e-12);
    }

    fn tiny() -> Byol {
        let backbone = ResNetConfig::tiny(1);
        let cfg =
            ByolConfig { dim: 8, mlp_hidden: 16, mlp_bn: true, mlp_layers: 2, predictor_hidden: 16, tau_base: 0.9 };
        Byol::new(Device::Cpu, &backbone, cfg, MixTarget::View2)
    }

    #[test]
    fn target_gets_no_gradient_and_follows_the_online_network_by_ema() {
        let mut m = tiny();
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.4 });
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let info = StepInfo { step: 0, total_steps: 10, epoch: 0 };
        let loss = m.loss(&[x1, x2], Some(&mixed.clone().into()), &info, &mut rng).unwrap();
        loss.backward();
        for (name, t) in named_variables(&m.vs_t) {
            assert!(!t.requires_grad() && !t.grad().defined(), "target {name} must get no gradient");
        }
        // Move the online network, then one EMA step with tau 0.9 moves the target 10% of the way.
        let (name, online) =
            crate::model::named_trainable(&m.vs).into_iter().find(|(n, _)| n == "head.fc2.weight").unwrap();
        let before = m.vs_t.variables()[&name].copy();
        tch::no_grad(|| {
            let _ = online.shallow_clone().g_add_scalar_(1.0);
        });
        m.after_step(&info);
        let after = &m.vs_t.variables()[&name];
        let expect = &before * 0.9 + &online * 0.1;
        assert!((after - expect).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn unmix_weighting_for_byol() {
        let mut m = tiny();
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.25 });
        let info = StepInfo::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let base = m.loss(&[x1.shallow_clone(), x2.shallow_clone()], None, &info, &mut rng).unwrap().double_value(&[]);
        let with = m
            .loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed.clone().into()), &info, &mut rng)
            .unwrap()
            .double_value(&[]);
        let (pm, p2) = (m.predict(&mixed.images), m.predict(&x2));
        let (tm, t2) = (m.project_target(&mixed.images), m.project_target(&x2));
        let d = (normalized_mse(&pm, &t2) + normalized_mse(&p2, &tm)).double_value(&[]);
        let r = (normalized_mse(&pm.flip([0]), &t2) + normalized_mse(&p2, &tm.flip([0]))).double_value(&[]);
        assert!((with - (base + 0.25 * d + 0.75 * r)).abs() < 1e-4, "{with} vs {}", base + 0.25 * d + 0.75 * r);
    }
}
