//! SimCLR (Chen et al. 2020): one encoder with an MLP head, NT-Xent over the 2N views of a batch.
//!
//! Un-Mix, as the authors describe it for SimCLR: the mixture of view 1 is scored with NT-Xent
//! against the unmixed view 2 (or view 1, an option), the other mixed images acting as negatives:
//! `L = L(x0, x1) + lam * L(mixed, x1) + (1 - lam) * L(reversed(mixed), x1)`.

use super::losses::{batch_similarities, normalize, nt_xent};
use super::{method_settings, positive, Method, StepInfo};
use crate::dist::{global_batch, Grad};
use crate::mix::{MixTarget, Mixture, VirtualMix};
use crate::model::{Encoder, ResNetConfig};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

method_settings! {
    /// SimCLR's `[method]` keys (`name = "simclr"`).
    pub struct SimClrConfig {
        /// NT-Xent temperature.
        #[serde(default = "d01")]
        pub temperature: f64,
    }
}

fn d01() -> f64 {
    0.1
}

impl SimClrConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        positive("method.temperature", self.temperature)
    }
}

pub struct SimClr {
    cfg: SimClrConfig,
    mix_target: MixTarget,
    vs: nn::VarStore,
    net: Encoder,
    feats: Option<Tensor>,
    dist: Option<std::sync::Arc<crate::dist::Dist>>,
}

impl SimClr {
    pub fn new(device: Device, backbone: &ResNetConfig, cfg: SimClrConfig, mix_target: MixTarget) -> Self {
        let vs = nn::VarStore::new(device);
        let net = Encoder::new(&vs.root(), backbone, &cfg.projector().head());
        SimClr { cfg, mix_target, vs, net, feats: None, dist: None }
    }
}

impl SimClr {
    /// i-Mix in its N-pair form (the authors' `npair`): the mixed view 1 takes view 1's place, one
    /// forward pass over [mixed view 1; view 2] as their code, and each mixed embedding is scored
    /// against the N view-2 embeddings of the batch with its virtual label (no other negatives, no
    /// clean term). One process (the config refuses i-Mix across processes).
    fn imix_loss(&mut self, v: &VirtualMix, x2: &Tensor) -> Tensor {
        let n = v.images.size()[0];
        let z = normalize(&self.net.forward_t(&Tensor::cat(&[&v.images, x2], 0), true));
        v.term(&batch_similarities(&z.narrow(0, 0, n), &z.narrow(0, n, n), None), n, self.cfg.temperature)
    }
}

impl Method for SimClr {
    super::single_store_parts!(net);

    fn loss(
        &mut self,
        views: &[Tensor],
        mixture: Option<&Mixture>,
        _info: &StepInfo,
        _rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Tensor> {
        let t = self.cfg.temperature;
        if let Some(v) = mixture.and_then(Mixture::virtual_labels) {
            return Ok(self.imix_loss(v, &views[1]));
        }
        let (f1, z1) = self.net.forward_parts(&views[0], true);
        self.feats = Some(f1.detach());
        let z2 = self.net.forward_t(&views[1], true);
        // Several processes: every process computes the loss of the whole global batch, with
        // gradients reaching its own rows only; the training loop sums the gradients
        // (`global_loss`), which gives the single-process gradient.
        let all = |z: &Tensor| global_batch(self.dist.as_deref(), z, Grad::Local);
        let (g1, g2) = (all(&z1)?, all(&z2)?);
        let mut loss = nt_xent(&g1, &g2, t);
        if let Some(m) = mixture.and_then(Mixture::unmix) {
            let zm = self.net.forward_t(&m.images, true);
            let target = if self.mix_target == MixTarget::View2 { &g2 } else { &g1 };
            loss = loss + m.term(|p| Ok(nt_xent(&all(&p.arrange(&zm))?, target, t)))?;
        }
        Ok(loss)
    }

    fn set_dist(&mut self, dist: Option<std::sync::Arc<crate::dist::Dist>>) {
        self.dist = dist;
    }

    fn global_loss(&self) -> bool {
        self.dist.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind, Mixed};
    use rand::SeedableRng;
    use tch::Kind;

    #[test]
    fn imix_npair_scores_mixed_view1_against_view2_with_virtual_labels() {
        // 4 samples, partners [1, 0, 3, 2], lambdas [0.5, 0.75, 0.9, 0.6]: one pass over
        // [mixed view 1; view 2]; logits_ij = z~_i . z2_j / 0.5 (4 x 4, no other negatives);
        // loss = mean_i [lam_i CE(l_i, i) + (1 - lam_i) CE(l_i, perm(i))], in float64 by hand.
        let backbone = ResNetConfig::tiny(1);
        let cfg = SimClrConfig { dim: 8, mlp_hidden: 16, mlp_bn: true, mlp_layers: 2, temperature: 0.5 };
        let mut m = SimClr::new(Device::Cpu, &backbone, cfg, MixTarget::View2);
        m.vs.double();
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let (lams, perm) = (vec![0.5, 0.75, 0.9, 0.6], vec![1i64, 0, 3, 2]);
        let images = crate::mix::imix::mix_pairs(&x1, &[0, 1, 2, 3], &perm, &lams);
        let v = VirtualMix {
            images: images.shallow_clone(),
            first: (0..4).collect(),
            second: perm.clone(),
            lams: lams.clone(),
            replaces_view1: true,
            temperature: None,
            weight: 1.0,
        };
        let info = StepInfo::default();
        let views = [x1.shallow_clone(), x2.shallow_clone()];
        let loss = m.loss(&views, Some(&v.into()), &info, &mut ChaCha8Rng::seed_from_u64(0)).unwrap().double_value(&[]);
        let z = normalize(&m.net.forward_t(&Tensor::cat(&[&images, &x2], 0), true));
        let mut by_hand = 0.0;
        for i in 0..4usize {
            let l: Vec<f64> =
                (0..4).map(|j| (z.get(i as i64) * z.get(4 + j)).sum(Kind::Double).double_value(&[]) / 0.5).collect();
            let lse = l.iter().map(|x| x.exp()).sum::<f64>().ln();
            by_hand -= lams[i] * (l[i] - lse) + (1.0 - lams[i]) * (l[perm[i] as usize] - lse);
        }
        by_hand /= 4.0;
        assert!((loss - by_hand).abs() < 1e-10, "{loss} vs {by_hand}");
    }

    #[test]
    fn unmix_term_is_lambda_weighted_nt_xent_against_view2() {
        let backbone = ResNetConfig::tiny(1);
        let cfg = SimClrConfig { dim: 8, mlp_hidden: 16, mlp_bn: true, mlp_layers: 2, temperature: 0.5 };
        let mut m = SimClr::new(Device::Cpu, &backbone, cfg, MixTarget::View2);
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.3 });
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let info = StepInfo::default();
        let base = m.loss(&[x1.shallow_clone(), x2.shallow_clone()], None, &info, &mut rng).unwrap().double_value(&[]);
        let with =
            m.loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed.clone().into()), &info, &mut rng).unwrap();
        let z2 = m.net.forward_t(&x2, true);
        let zm = m.net.forward_t(&mixed.images, true);
        let expect = base
            + 0.3 * nt_xent(&zm, &z2, 0.5).double_value(&[])
            + 0.7 * nt_xent(&zm.flip([0]), &z2, 0.5).double_value(&[]);
        assert!((with.double_value(&[]) - expect).abs() < 1e-4);
        // Gradient reaches the encoder through all terms.
        with.backward();
        assert!(m.vs.trainable_variables().iter().all(|t| t.grad().defined()));
    }
}
