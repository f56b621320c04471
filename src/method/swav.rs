//! SwAV (Caron et al. 2020): online clustering of L2-normalized projections onto learnable
//! prototypes; codes from the Sinkhorn-Knopp algorithm on one view predict the prototype scores of
//! the other (swapped prediction). Prototypes are L2-normalized before each step and frozen for
//! the first iterations.
//!
//! Un-Mix as the authors' SwAV code does it: one forward pass over [view 1, view 2, mixture]; the
//! mixture takes the place of view 1 in a second swapped-prediction loss against view 2, and in the
//! reversed term only the Sinkhorn code computed from the mixture is reversed, not its predictions:
//! `L = L(v1, v2) + lam * L(mix, v2) + (1 - lam) * L_rev(mix, v2)`.

use super::losses::normalize;
use super::{Method, StepInfo};
use crate::mix::{reversed, Mixed};
use crate::model::{head::HeadConfig, Encoder, ResNetConfig};
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::Module, Device, Kind, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct SwavConfig {
    pub head: HeadConfig,
    pub prototypes: i64,
    pub temperature: f64,
    pub epsilon: f64,
    pub sinkhorn_iters: usize,
    /// Prototypes receive no update during the first N optimizer steps.
    pub freeze_prototypes_steps: u64,
}

pub struct Swav {
    cfg: SwavConfig,
    vs: nn::VarStore,
    net: Encoder,
    prototypes: nn::Linear,
    feats: Option<Tensor>,
}

/// Sinkhorn-Knopp on prototype scores (B, K): equal-partition soft assignments (B, K) whose rows
/// sum to 1 and whose columns are used (close to) uniformly, as SwAV's `distributed_sinkhorn` on
/// one process. Computed without gradient.
pub fn sinkhorn(scores: &Tensor, epsilon: f64, iters: usize) -> Tensor {
    tch::no_grad(|| {
        let s = scores.to_kind(Kind::Float) / epsilon;
        // Subtracting the maximum changes nothing after normalization and avoids overflow.
        let mut q = (&s - s.max()).exp().transpose(0, 1); // (K, B)
        let (k, b) = (q.size()[0] as f64, q.size()[1] as f64);
        q = &q / q.sum(Kind::Float);
        for _ in 0..iters {
            let u = q.sum_dim_intlist(1, true, Kind::Float);
            q = &q / (u * k);
            let c = q.sum_dim_intlist(0, true, Kind::Float);
            q = &q / (c * b);
        }
        (&q / q.sum_dim_intlist(0, true, Kind::Float)).transpose(0, 1)
    })
}

/// Cross-entropy between codes `q` (B, K) and the softmax of scores / t (B, K).
pub fn swapped_ce(q: &Tensor, scores: &Tensor, t: f64) -> Tensor {
    -(q * (scores / t).log_softmax(1, Kind::Float)).sum_dim_intlist(1, false, Kind::Float).mean(Kind::Float)
}

impl Swav {
    pub fn new(device: Device, backbone: &ResNetConfig, cfg: SwavConfig) -> Self {
        let vs = nn::VarStore::new(device);
        let net = Encoder::new(&vs.root(), backbone, &cfg.head);
        let bound = 1.0 / (cfg.head.dim as f64).sqrt();
        let prototypes = nn::linear(
            vs.root() / "prototypes",
            cfg.head.dim,
            cfg.prototypes,
            nn::LinearConfig { ws_init: nn::Init::Uniform { lo: -bound, up: bound }, bs_init: None, bias: false },
        );
        Swav { cfg, vs, net, prototypes, feats: None }
    }

    fn normalize_prototypes(&self) {
        tch::no_grad(|| {
            let w = &self.prototypes.ws;
            w.shallow_clone().copy_(&normalize(w));
        });
    }

    /// Swapped prediction between two crops given their scores and codes.
    fn pair_loss(&self, sa: &Tensor, qa: &Tensor, sb: &Tensor, qb: &Tensor) -> Tensor {
        let t = self.cfg.temperature;
        (swapped_ce(qa, sb, t) + swapped_ce(qb, sa, t)) * 0.5
    }

    fn code(&self, scores: &Tensor) -> Tensor {
        sinkhorn(scores, self.cfg.epsilon, self.cfg.sinkhorn_iters)
    }
}

impl Method for Swav {
    super::single_store_parts!(net);

    fn loss(&mut self, views: &[Tensor], mixed: Option<&Mixed>, _info: &StepInfo, _rng: &mut ChaCha8Rng) -> Tensor {
        self.normalize_prototypes();
        let b = views[0].size()[0];
        // One forward pass over all crops of the same size, as the authors' multi-crop wrapper.
        let mut inputs = vec![views[0].shallow_clone(), views[1].shallow_clone()];
        if let Some(m) = mixed {
            inputs.push(m.images.shallow_clone());
        }
        let (f, z) = self.net.forward_parts(&Tensor::cat(&inputs, 0), true);
        self.feats = Some(f.narrow(0, 0, b).detach());
        let z = normalize(&z);
        let scores = self.prototypes.forward(&z);
        let (s1, s2) = (scores.narrow(0, 0, b), scores.narrow(0, b, b));
        let (q1, q2) = (self.code(&s1), self.code(&s2));
        let mut loss = self.pair_loss(&s1, &q1, &s2, &q2);
        if let Some(m) = mixed {
            let sm = scores.narrow(0, 2 * b, b);
            let qm = self.code(&sm);
            let direct = self.pair_loss(&sm, &qm, &s2, &q2);
            let reverse = self.pair_loss(&sm, &reversed(&qm), &s2, &q2);
            loss = loss + m.weigh(&direct, &reverse);
        }
        loss
    }

    fn frozen(&self, name: &str, info: &StepInfo) -> bool {
        info.step < self.cfg.freeze_prototypes_steps && name.starts_with("prototypes.")
    }

}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind};
    use crate::model::Arch;
    use rand::SeedableRng;

    #[test]
    fn sinkhorn_marginals_are_uniform() {
        // Cosine scores, as SwAV's normalized projections against normalized prototypes.
        let z = normalize(&Tensor::randn([64, 8], (Kind::Float, Device::Cpu)));
        let c = normalize(&Tensor::randn([10, 8], (Kind::Float, Device::Cpu)));
        let scores = z.mm(&c.transpose(0, 1));
        let q = sinkhorn(&scores, 0.05, 3);
        // Each sample's code is a distribution.
        let rows = q.sum_dim_intlist(1, false, Kind::Float);
        assert!((rows - 1.0).abs().max().double_value(&[]) < 1e-5);
        // Prototypes are used more equally than by a plain softmax, and equally in the limit:
        // column sums approach B / K = 6.4 as iterations grow.
        let dev = |q: &Tensor| (q.sum_dim_intlist(0, false, Kind::Float) - 6.4).abs().max().double_value(&[]);
        let softmax = (&scores / 0.05).softmax(1, Kind::Float);
        assert!(dev(&q) < dev(&softmax), "{} vs softmax {}", dev(&q), dev(&softmax));
        let q200 = sinkhorn(&scores, 0.05, 200);
        assert!(dev(&q200) < 0.05, "{}", dev(&q200));
        assert!(!q.requires_grad());
    }

    #[test]
    fn swapped_ce_by_hand() {
        // q = [1, 0], scores = [0, 0] / t: -log(1/2).
        let q = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
        let s = Tensor::from_slice(&[0.0f32, 0.0]).view([1, 2]);
        assert!((swapped_ce(&q, &s, 0.1).double_value(&[]) - 2f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn reverse_term_flips_only_the_mixture_code() {
        let backbone = ResNetConfig { arch: Arch::ResNet18, widths: [4, 4, 8, 8], in_channels: 1, cifar_stem: true, bn_splits: 1 };
        let cfg = SwavConfig {
            head: HeadConfig { dim: 8, hidden: 16, bn: true },
            prototypes: 5,
            temperature: 0.1,
            epsilon: 0.05,
            sinkhorn_iters: 3,
            freeze_prototypes_steps: 10,
        };
        let mut m = Swav::new(Device::Cpu, &backbone, cfg);
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.3 });
        let info = StepInfo::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let with = m.loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed), &info, &mut rng).double_value(&[]);
        // Recompute by hand from one forward pass.
        let z = normalize(&m.net.forward_t(&Tensor::cat(&[&x1, &x2, &mixed.images], 0), true));
        let s = m.prototypes.forward(&z);
        let (s1, s2, sm) = (s.narrow(0, 0, 4), s.narrow(0, 4, 4), s.narrow(0, 8, 4));
        let (q1, q2, qm) = (m.code(&s1), m.code(&s2), m.code(&sm));
        let ce = |q: &Tensor, s: &Tensor| swapped_ce(q, s, 0.1).double_value(&[]);
        let orig = 0.5 * (ce(&q1, &s2) + ce(&q2, &s1));
        let direct = 0.5 * (ce(&qm, &s2) + ce(&q2, &sm));
        let reverse = 0.5 * (ce(&qm.flip([0]), &s2) + ce(&q2, &sm));
        let expect = orig + 0.3 * direct + 0.7 * reverse;
        assert!((with - expect).abs() < 1e-4, "{with} vs {expect}");
        // Prototypes are frozen for the first steps only, and are unit rows after a step begins.
        assert!(m.frozen("prototypes.weight", &StepInfo { step: 9, total_steps: 100 }));
        assert!(!m.frozen("prototypes.weight", &StepInfo { step: 10, total_steps: 100 }));
        assert!(!m.frozen("head.fc1.weight", &StepInfo { step: 0, total_steps: 100 }));
        let norms = m.prototypes.ws.norm_scalaropt_dim(2, [1i64].as_slice(), false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    }
}
