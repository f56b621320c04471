//! SwAV (Caron et al. 2020): online clustering of L2-normalized projections onto learnable
//! prototypes; codes from the Sinkhorn-Knopp algorithm on the two large crops predict the
//! prototype scores of every other crop (swapped prediction). Prototypes are L2-normalized before
//! each step and frozen for the first iterations. Multi-crop: small crops (views 2, 3, ...) only
//! predict; they get no code. Queue: from a given epoch, the projections of the last `queue`
//! samples of each large crop join the Sinkhorn batch, once the queue is full.
//!
//! Un-Mix as the authors' SwAV code does it: one forward pass over [view 1, view 2, mixture] (and
//! the small crops with their mixtures); the mixture takes the place of view 1, and the mixture of
//! each even-numbered small crop the place of that crop, in a second swapped-prediction loss; in
//! the reversed term only the Sinkhorn code computed from the mixture is reversed, not the
//! predictions: `L = L(crops) + lam * L(mixed crops) + (1 - lam) * L_rev(mixed crops)`.
//! The queue holds unmixed projections only, pushed once per step (batch-size rows per large
//! crop). The authors' code pushes three times a step, once in each of its three `swav_loss`
//! calls: view 1's slot gets the clean projections, then the mixture's, then the reversed
//! mixture's; view 2's slot gets view 2's three times. Two thirds of their view-1 rows are
//! mixtures, and a queue of the same length spans a third of the steps. Without a queue, as in
//! their CIFAR runs (the script's 120 rounds down to 0), this changes nothing.

use super::losses::normalize;
use super::{method_settings, positive, view2_only, Features, Method, RunContext, StepInfo};
use crate::dist::{global_batch, Grad};
use crate::mix::Mixture;
use crate::model::{Encoder, ResNetConfig};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use tch::{nn, nn::Module, Device, Kind, Tensor};

method_settings! {
    /// SwAV's `[method]` keys (`name = "swav"`).
    pub struct SwavConfig {
        /// Number of prototypes.
        #[serde(default = "d100")]
        pub prototypes: i64,
        /// Softmax temperature of the swapped prediction.
        #[serde(default = "d01")]
        pub temperature: f64,
        /// Sinkhorn-Knopp epsilon and iterations.
        #[serde(default = "d005")]
        pub sinkhorn_epsilon: f64,
        #[serde(default = "d3")]
        pub sinkhorn_iters: usize,
        /// Prototypes are not updated during the first N optimizer steps.
        #[serde(default)]
        pub freeze_prototypes_steps: u64,
        /// Queue of past projections per large crop joining the Sinkhorn batch (0 = none; a
        /// multiple of the global batch).
        #[serde(default)]
        pub swav_queue: i64,
        /// The epoch (1-based) from which the queue is kept. The authors' `--epoch_queue_starts N`
        /// counts epochs from 0 (`epoch >= N`), so it is N + 1 here: the default 16 is their 15.
        #[serde(default = "d16")]
        pub swav_queue_start_epoch: usize,
    }
}

fn d100() -> i64 {
    100
}
fn d01() -> f64 {
    0.1
}
fn d005() -> f64 {
    0.05
}
fn d3() -> usize {
    3
}
fn d16() -> usize {
    16
}

impl SwavConfig {
    pub fn validate(&self, ctx: &RunContext) -> Result<()> {
        if self.prototypes <= 0
            || self.prototypes > super::MAX_WIDTH
            || self.sinkhorn_iters == 0
            || self.sinkhorn_iters > 1000
        {
            bail!("SwAV needs method.prototypes in 1..=65536 and method.sinkhorn_iters in 1..=1000");
        }
        positive("method.sinkhorn_epsilon", self.sinkhorn_epsilon)?;
        positive("method.temperature", self.temperature)?;
        let b = ctx.global_batch();
        if self.swav_queue < 0 || self.swav_queue > 1 << 22 || self.swav_queue % b != 0 {
            bail!(
                "method.swav_queue = {} must be 0 or a positive multiple of the global batch ({b} = train.batch_size{})",
                self.swav_queue,
                if ctx.processes > 1 { format!(" x {} processes", ctx.processes) } else { String::new() }
            );
        }
        if self.swav_queue > 0 && self.swav_queue_start_epoch == 0 {
            bail!("method.swav_queue_start_epoch counts from 1 (the first epoch)");
        }
        view2_only("SwAV", "the mixture replaces view 1 and is scored against view 2's code", ctx)
    }
}

pub struct Swav {
    cfg: SwavConfig,
    vs: nn::VarStore,
    net: Encoder,
    prototypes: nn::Linear,
    feats: Option<Tensor>,
    /// (2, queue, dim) projections of the two large crops, newest first; created at the start epoch.
    queue: Option<Tensor>,
    /// Samples pushed into the queue so far (it is used once this reaches its length).
    queued: i64,
    dist: Option<std::sync::Arc<crate::dist::Dist>>,
}

/// Sinkhorn-Knopp on prototype scores (B, K): equal-partition soft assignments (B, K) whose rows
/// sum to 1 and whose columns are used (close to) uniformly, as SwAV's `distributed_sinkhorn` on
/// one process. Computed without gradient.
pub fn sinkhorn(scores: &Tensor, epsilon: f64, iters: usize) -> Tensor {
    let _fp32 = crate::precision::Fp32Scope::new();
    tch::no_grad(|| {
        let s = super::losses::wide(scores) / epsilon;
        let kind = s.kind();
        // Subtracting the maximum changes nothing after normalization and avoids overflow.
        let mut q = (&s - s.max()).exp().transpose(0, 1); // (K, B)
        let (k, b) = (q.size()[0] as f64, q.size()[1] as f64);
        q = &q / q.sum(kind);
        for _ in 0..iters {
            let u = q.sum_dim_intlist(1, true, kind);
            q = &q / (u * k);
            let c = q.sum_dim_intlist(0, true, kind);
            q = &q / (c * b);
        }
        (&q / q.sum_dim_intlist(0, true, kind)).transpose(0, 1)
    })
}

/// Cross-entropy between codes `q` (B, K) and the softmax of scores / t (B, K).
pub fn swapped_ce(q: &Tensor, scores: &Tensor, t: f64) -> Tensor {
    let _fp32 = crate::precision::Fp32Scope::new();
    let (q, scores) = (&super::losses::wide(q), &super::losses::wide(scores));
    let kind = scores.kind();
    -(q * (scores / t).log_softmax(1, kind)).sum_dim_intlist(1, false, kind).mean(kind)
}

/// SwAV's multi-crop loss: the code of crop `i` (for `i < codes.len()`) predicted by the scores of
/// every other crop, averaged over those crops and then over the codes.
pub fn swapped_prediction(codes: &[Tensor], scores: &[Tensor], t: f64) -> Tensor {
    let others = (scores.len() - 1) as f64;
    let per_code: Vec<Tensor> = codes
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let terms: Vec<Tensor> =
                scores.iter().enumerate().filter(|(v, _)| *v != i).map(|(_, s)| swapped_ce(q, s, t)).collect();
            let kind = terms[0].kind();
            Tensor::stack(&terms, 0).sum(kind) / others
        })
        .collect();
    let kind = per_code[0].kind();
    Tensor::stack(&per_code, 0).mean(kind)
}

impl Swav {
    pub fn new(device: Device, backbone: &ResNetConfig, cfg: SwavConfig) -> Self {
        let vs = nn::VarStore::new(device);
        let net = Encoder::new(&vs.root(), backbone, &cfg.projector().head());
        let bound = 1.0 / (cfg.dim as f64).sqrt();
        let prototypes = nn::linear(
            vs.root() / "prototypes",
            cfg.dim,
            cfg.prototypes,
            nn::LinearConfig { ws_init: nn::Init::Uniform { lo: -bound, up: bound }, bs_init: None, bias: false },
        );
        Swav { cfg, vs, net, prototypes, feats: None, queue: None, queued: 0, dist: None }
    }

    fn normalize_prototypes(&self) {
        tch::no_grad(|| {
            let w = &self.prototypes.ws;
            w.shallow_clone().copy_(&normalize(w));
        });
    }

    /// With several processes: the global batch of per-process rows (constants).
    fn global(&self, local: &Tensor) -> anyhow::Result<Tensor> {
        global_batch(self.dist.as_deref(), local, Grad::None)
    }

    /// The Sinkhorn code of large crop `i` from its scores, with the queue's projections in the
    /// batch once the queue is full. With several processes the codes are computed over the
    /// global batch (as SwAV's distributed Sinkhorn) and this process's rows returned.
    fn code(&self, i: i64, scores: &Tensor) -> anyhow::Result<Tensor> {
        let scores = self.global(scores)?;
        let b = scores.size()[0];
        let q = match &self.queue {
            Some(queue) if self.queued >= queue.size()[1] => {
                let past = tch::no_grad(|| self.prototypes.forward(&queue.get(i)));
                let all = Tensor::cat(&[past.to_kind(scores.kind()), scores], 0);
                let q = sinkhorn(&all, self.cfg.sinkhorn_epsilon, self.cfg.sinkhorn_iters);
                q.narrow(0, q.size()[0] - b, b)
            }
            _ => sinkhorn(&scores, self.cfg.sinkhorn_epsilon, self.cfg.sinkhorn_iters),
        };
        match &self.dist {
            Some(d) => Ok(d.shard_of(&q)),
            None => Ok(q),
        }
    }

    /// Pushes the (global) batch's projections of the two large crops (newest first).
    fn enqueue(&mut self, z: &[Tensor; 2]) -> anyhow::Result<()> {
        if self.queue.is_none() {
            return Ok(());
        }
        let z = [self.global(&z[0])?, self.global(&z[1])?];
        let Some(queue) = &self.queue else { return Ok(()) };
        let b = z[0].size()[0];
        let len = queue.size()[1];
        tch::no_grad(|| {
            let older = queue.narrow(1, 0, len - b).copy();
            queue.narrow(1, b, len - b).copy_(&older);
            queue.narrow(1, 0, b).copy_(&Tensor::stack(&[z[0].detach(), z[1].detach()], 0));
        });
        self.queued += b;
        Ok(())
    }

    /// Normalized projections and prototype scores of a batch of same-size crops, split per crop.
    fn project(&self, crops: &[&Tensor]) -> (Tensor, Vec<Tensor>, Vec<Tensor>) {
        let b = crops[0].size()[0];
        let (f, z) = self.net.forward_parts(&Tensor::cat(crops, 0), true);
        let z = normalize(&z);
        let s = self.prototypes.forward(&z);
        let n = crops.len() as i64;
        (f, (0..n).map(|k| z.narrow(0, k * b, b)).collect(), (0..n).map(|k| s.narrow(0, k * b, b)).collect())
    }
}

const QUEUE: &str = "swav.queue";
const QUEUED: &str = "swav.queued";

impl Method for Swav {
    fn trainable(&self) -> &nn::VarStore {
        &self.vs
    }

    fn to_double(&mut self) {
        self.vs.double();
        if let Some(q) = &mut self.queue {
            *q = q.to_kind(Kind::Double);
        }
    }

    fn take_features(&mut self) -> Option<Tensor> {
        self.feats.take()
    }

    fn embed(&self, x: &Tensor, features: Features) -> Tensor {
        self.net.embed(x, features)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut s = super::stores_state(&[("q.", &self.vs)]);
        if let Some(q) = &self.queue {
            s.push((QUEUE.into(), q.shallow_clone()));
            s.push((QUEUED.into(), Tensor::from_slice(&[self.queued])));
        }
        s
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> anyhow::Result<()> {
        super::load_stores(&[("q.", &self.vs)], state)?;
        let find = |k: &str| state.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        if let (Some(q), Some(n)) = (find(QUEUE), find(QUEUED)) {
            self.queue = Some(q.to_device(self.vs.device()).copy());
            self.queued = n.int64_value(&[0]);
        }
        Ok(())
    }

    fn loss(
        &mut self,
        views: &[Tensor],
        mixture: Option<&Mixture>,
        info: &StepInfo,
        _rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Tensor> {
        let mixed = mixture.and_then(Mixture::unmix);
        self.normalize_prototypes();
        let b = views[0].size()[0];
        // The queue starts at the configured (1-based) epoch; `info.epoch` counts from 0.
        if self.cfg.swav_queue > 0 && info.epoch + 1 >= self.cfg.swav_queue_start_epoch && self.queue.is_none() {
            let kind = self.prototypes.ws.kind();
            self.queue = Some(Tensor::zeros([2, self.cfg.swav_queue, self.cfg.dim], (kind, self.vs.device())));
            self.queued = 0;
        }
        // One forward pass per crop size, as the authors' multi-crop wrapper: the large crops with
        // view 1's mixture, then the small crops with theirs.
        let mut large = vec![&views[0], &views[1]];
        if let Some(m) = mixed {
            large.push(&m.images);
        }
        let (f, z, s_large) = self.project(&large);
        self.feats = Some(f.narrow(0, 0, b).detach());
        let mut scores = vec![s_large[0].shallow_clone(), s_large[1].shallow_clone()];
        let mut small_mixed = Vec::new();
        if views.len() > 2 {
            let mut small: Vec<&Tensor> = views[2..].iter().collect();
            if let Some(m) = mixed {
                small.extend(m.crops.iter());
            }
            let (_, _, s_small) = self.project(&small);
            let n = views.len() - 2;
            scores.extend(s_small[..n].iter().map(|s| s.shallow_clone()));
            small_mixed = s_small[n..].iter().map(|s| s.shallow_clone()).collect();
        }
        let codes = [self.code(0, &scores[0])?, self.code(1, &scores[1])?];
        let t = self.cfg.temperature;
        let mut loss = swapped_prediction(&codes, &scores, t);
        if let Some(m) = mixed {
            // The mixture replaces view 1, and each small crop's mixture replaces that crop.
            let mut mscores: Vec<Tensor> = scores.iter().map(|s| s.shallow_clone()).collect();
            mscores[0] = s_large[2].shallow_clone();
            for (j, s) in small_mixed.into_iter().enumerate() {
                mscores[2 + 2 * j] = s;
            }
            let qm = self.code(0, &mscores[0])?;
            let q2 = &codes[1];
            // Only the mixture's code follows the pairing; the predictions keep their order.
            loss = loss + m.term(|p| Ok(swapped_prediction(&[p.arrange(&qm), q2.shallow_clone()], &mscores, t)))?;
        }
        self.enqueue(&[z[0].shallow_clone(), z[1].shallow_clone()])?;
        Ok(loss)
    }

    fn frozen(&self, name: &str, info: &StepInfo) -> bool {
        info.step < self.cfg.freeze_prototypes_steps && name.starts_with("prototypes.")
    }

    fn set_dist(&mut self, dist: Option<std::sync::Arc<crate::dist::Dist>>) {
        self.dist = dist;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind, Mixed};
    use rand::SeedableRng;

    #[test]
    fn sinkhorn_marginals_are_uniform() {
        // Cosine scores, as SwAV's normalized projections against normalized prototypes, from a
        // seeded stream of its own (libtorch's global generator is shared by the tests running
        // beside this one, which made the draw, and so the outcome, depend on test order).
        use rand_distr::Distribution;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut normal = |n: i64| -> Tensor {
            let v: Vec<f32> = (0..n * 8).map(|_| rand_distr::StandardNormal.sample(&mut rng)).collect();
            Tensor::from_slice(&v).view([n, 8])
        };
        let z = normalize(&normal(64));
        let c = normalize(&normal(10));
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
        let mut m = small_swav(0, 10);
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.3 });
        let info = StepInfo::default();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let with = m
            .loss(&[x1.shallow_clone(), x2.shallow_clone()], Some(&mixed.clone().into()), &info, &mut rng)
            .unwrap()
            .double_value(&[]);
        // Recompute by hand from one forward pass.
        let z = normalize(&m.net.forward_t(&Tensor::cat(&[&x1, &x2, &mixed.images], 0), true));
        let s = m.prototypes.forward(&z);
        let (s1, s2, sm) = (s.narrow(0, 0, 4), s.narrow(0, 4, 4), s.narrow(0, 8, 4));
        let (q1, q2, qm) = (m.code(0, &s1).unwrap(), m.code(1, &s2).unwrap(), m.code(0, &sm).unwrap());
        let ce = |q: &Tensor, s: &Tensor| swapped_ce(q, s, 0.1).double_value(&[]);
        let orig = 0.5 * (ce(&q1, &s2) + ce(&q2, &s1));
        let direct = 0.5 * (ce(&qm, &s2) + ce(&q2, &sm));
        let reverse = 0.5 * (ce(&qm.flip([0]), &s2) + ce(&q2, &sm));
        let expect = orig + 0.3 * direct + 0.7 * reverse;
        assert!((with - expect).abs() < 1e-4, "{with} vs {expect}");
        // Prototypes are frozen for the first steps only, and are unit rows after a step begins.
        assert!(m.frozen("prototypes.weight", &StepInfo { step: 9, total_steps: 100, epoch: 0 }));
        assert!(!m.frozen("prototypes.weight", &StepInfo { step: 10, total_steps: 100, epoch: 0 }));
        assert!(!m.frozen("head.fc1.weight", &StepInfo { step: 0, total_steps: 100, epoch: 0 }));
        let norms = m.prototypes.ws.norm_scalaropt_dim(2, [1i64].as_slice(), false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    }

    fn small_swav(queue: i64, freeze_prototypes_steps: u64) -> Swav {
        let backbone = ResNetConfig::tiny(1);
        let cfg = SwavConfig {
            dim: 8,
            mlp_hidden: 16,
            mlp_bn: true,
            mlp_layers: 2,
            prototypes: 5,
            temperature: 0.1,
            sinkhorn_epsilon: 0.05,
            sinkhorn_iters: 3,
            freeze_prototypes_steps,
            swav_queue: queue,
            swav_queue_start_epoch: 2,
        };
        Swav::new(Device::Cpu, &backbone, cfg)
    }

    #[test]
    fn swapped_prediction_averages_over_other_crops() {
        let s: Vec<Tensor> = (0..4).map(|_| Tensor::randn([6, 5], (Kind::Float, Device::Cpu))).collect();
        let q: Vec<Tensor> = s[..2].iter().map(|x| sinkhorn(x, 0.05, 3)).collect();
        let ce = |q: &Tensor, s: &Tensor| swapped_ce(q, s, 0.1).double_value(&[]);
        // Two crops: the symmetric pair loss.
        let two = swapped_prediction(&q, &s[..2], 0.1).double_value(&[]);
        assert!((two - 0.5 * (ce(&q[0], &s[1]) + ce(&q[1], &s[0]))).abs() < 1e-5);
        // Four crops: each code predicted by the three other crops.
        let four = swapped_prediction(&q, &s, 0.1).double_value(&[]);
        let a = (ce(&q[0], &s[1]) + ce(&q[0], &s[2]) + ce(&q[0], &s[3])) / 3.0;
        let b = (ce(&q[1], &s[0]) + ce(&q[1], &s[2]) + ce(&q[1], &s[3])) / 3.0;
        assert!((four - 0.5 * (a + b)).abs() < 1e-5, "{four} vs {}", 0.5 * (a + b));
    }

    #[test]
    fn multi_crop_unmix_replaces_view1_and_even_small_crops() {
        let mut m = small_swav(0, 0);
        let big = |_| Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let small = |_| Tensor::randn([4, 1, 4, 4], (Kind::Float, Device::Cpu));
        let (x1, x2) = (big(0), big(1));
        let (s1, s2) = (small(0), small(1));
        let mut mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.4 });
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        mixed.mix_crops(&[&s1], &mut rng).unwrap();
        let info = StepInfo::default();
        let views = [x1.shallow_clone(), x2.shallow_clone(), s1.shallow_clone(), s2.shallow_clone()];
        let with = m.loss(&views, Some(&mixed.clone().into()), &info, &mut rng).unwrap().double_value(&[]);
        // By hand from the same two forward passes.
        let scores = |xs: &[&Tensor]| m.prototypes.forward(&normalize(&m.net.forward_t(&Tensor::cat(xs, 0), true)));
        let l = scores(&[&x1, &x2, &mixed.images]);
        let sm = scores(&[&s1, &s2, &mixed.crops[0]]);
        let part = |t: &Tensor, k: i64| t.narrow(0, 4 * k, 4);
        let crops = [part(&l, 0), part(&l, 1), part(&sm, 0), part(&sm, 1)];
        let mcrops = [part(&l, 2), part(&l, 1), part(&sm, 2), part(&sm, 1)];
        let (q1, q2, qm) =
            (m.code(0, &crops[0]).unwrap(), m.code(1, &crops[1]).unwrap(), m.code(0, &mcrops[0]).unwrap());
        let orig = swapped_prediction(&[q1, q2.shallow_clone()], &crops, 0.1).double_value(&[]);
        let direct = swapped_prediction(&[qm.shallow_clone(), q2.shallow_clone()], &mcrops, 0.1).double_value(&[]);
        let reverse = swapped_prediction(&[qm.flip([0]), q2], &mcrops, 0.1).double_value(&[]);
        let expect = orig + 0.4 * direct + 0.6 * reverse;
        assert!((with - expect).abs() < 1e-4, "{with} vs {expect}");
    }

    #[test]
    fn queue_starts_at_its_epoch_fills_and_joins_the_codes() {
        let mut m = small_swav(8, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let views = || {
            [
                Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu)),
                Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu)),
            ]
        };
        let _ = m.loss(&views(), None, &StepInfo { step: 0, total_steps: 9, epoch: 0 }, &mut rng).unwrap();
        assert!(m.queue.is_none(), "no queue before queue_start_epoch");
        assert!(m.state().iter().all(|(n, _)| n != QUEUE));
        let v = views();
        let _ = m.loss(&v, None, &StepInfo { step: 1, total_steps: 9, epoch: 1 }, &mut rng).unwrap();
        let q = m.queue.as_ref().unwrap().shallow_clone();
        assert_eq!(q.size(), vec![2, 8, 8]);
        assert_eq!(m.queued, 4);
        // Newest first: the batch's normalized projections of each large crop, then zeros.
        let z1 = normalize(&m.net.forward_t(&Tensor::cat(&[&v[0], &v[1]], 0), true)).narrow(0, 0, 4);
        assert!((q.get(0).narrow(0, 0, 4) - z1).abs().max().double_value(&[]) < 1e-5);
        assert_eq!(q.narrow(1, 4, 4).abs().sum(Kind::Float).double_value(&[]), 0.0);
        // Not full yet: codes ignore it. Full: codes are computed over queue + batch and differ.
        let s = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
        assert!((m.code(0, &s).unwrap() - sinkhorn(&s, 0.05, 3)).abs().max().double_value(&[]) < 1e-6);
        let _ = m.loss(&views(), None, &StepInfo { step: 2, total_steps: 9, epoch: 1 }, &mut rng).unwrap();
        assert_eq!(m.queued, 8);
        let with_queue = m.code(0, &s).unwrap();
        assert_eq!(with_queue.size(), vec![4, 5]);
        assert!((with_queue.sum_dim_intlist(1, false, Kind::Float) - 1.0).abs().max().double_value(&[]) < 1e-5);
        assert!((&with_queue - sinkhorn(&s, 0.05, 3)).abs().max().double_value(&[]) > 1e-4);
        // The queue is checkpointed and restored.
        let state = m.state();
        let mut fresh = small_swav(8, 0);
        fresh.load_state(&state).unwrap();
        assert_eq!(fresh.queued, 8);
        assert!((fresh.queue.unwrap() - m.queue.as_ref().unwrap()).abs().max().double_value(&[]) == 0.0);
    }
}
