//! MoCo v1 / v2 (He et al. 2020; Chen et al. 2020) with the authors' Un-Mix terms.
//!
//! Query encoder trained by SGD, key encoder as its exponential moving average, a queue of past
//! keys as negatives, InfoNCE with temperature. v1 uses a linear head, v2 an MLP head; the
//! symmetric option scores both directions (the authors' CIFAR default). MoCo v3-style options:
//! a predictor MLP on the query side (`predictor`) and in-batch keys instead of a queue
//! (`queue = 0`: the other samples' keys of the batch are the negatives).

use super::losses::{
    batch_similarities, info_nce, info_nce_in_batch, info_nce_in_batch_rows, info_nce_rows, normalize,
};
use super::{
    copy_named, load_stores, method_settings, positive, stores_state, view2_only, Features, Method, RunContext,
    StepInfo,
};
use crate::dist::{global_batch, Grad};
use crate::mix::{Mixed, Mixture, Pairing, VirtualMix};
use crate::model::{ema_update, init_target, Encoder, Parts, ResNetConfig};
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

method_settings! {
    /// MoCo's `[method]` keys (`name = "moco"`).
    pub struct MoCoConfig {
        /// Queue length K (a multiple of the keys enqueued per step; 0: the other keys of the
        /// batch are the negatives, MoCo v3; "auto": sized to the data when the run starts,
        /// see [`MoCoConfig::sized_to`]).
        #[serde(default = "d4096", with = "queue_len")]
        pub queue: i64,
        /// Key-encoder momentum m.
        #[serde(default = "d099")]
        pub momentum: f64,
        /// InfoNCE temperature T.
        #[serde(default = "d01")]
        pub temperature: f64,
        /// Score both directions (the authors' CIFAR default).
        #[serde(default)]
        pub symmetric: bool,
        /// MoCo v3: hidden width of a predictor MLP after the query head (0: none, MoCo v1/v2).
        #[serde(default)]
        pub predictor_hidden: i64,
        /// Symmetric MoCo + Un-Mix: forward the mixture through the query encoder in each
        /// direction's term, as the authors' CIFAR code (4 query batch-norm updates per step
        /// instead of 3; 3 more backbone passes per image). Gradients are the same either way;
        /// the running statistics, and so the eval-mode features, are not. No effect without
        /// `symmetric` (one direction forwards the mixture once).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub unmix_pass_per_direction: bool,
    }
}

fn d4096() -> i64 {
    4096
}

/// `method.queue = "auto"` until the run sizes it to its data.
pub const QUEUE_AUTO: i64 = -1;

/// `method.queue` in TOML: a number of keys, or "auto" ([`QUEUE_AUTO`]).
mod queue_len {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        if *v == super::QUEUE_AUTO {
            s.serialize_str("auto")
        } else {
            s.serialize_i64(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Len {
            Keys(i64),
            Word(String),
        }
        match Len::deserialize(d)? {
            Len::Keys(k) => Ok(k),
            Len::Word(w) if w == "auto" => Ok(super::QUEUE_AUTO),
            Len::Word(w) => Err(serde::de::Error::custom(format!(
                "\"{w}\" is not a queue length: give a number of keys or \"auto\" (sized to the data)"
            ))),
        }
    }
}
fn d099() -> f64 {
    0.99
}
fn d01() -> f64 {
    0.1
}

impl Default for MoCoConfig {
    /// MoCo v1 on the fmnist protocol: linear head onto 128, K 4096, m 0.99, T 0.1, asymmetric.
    fn default() -> Self {
        MoCoConfig {
            dim: 128,
            mlp_hidden: 0,
            mlp_bn: false,
            mlp_layers: 2,
            queue: 4096,
            momentum: 0.99,
            temperature: 0.1,
            symmetric: false,
            predictor_hidden: 0,
            unmix_pass_per_direction: false,
        }
    }
}

impl MoCoConfig {
    /// Keys that enter the queue per step over all processes (both directions when symmetric).
    fn keys_per_step(&self, ctx: &RunContext) -> i64 {
        ctx.global_batch() * if self.symmetric { 2 } else { 1 }
    }

    /// With `queue = "auto"`: the queue sized to `images` training images (the largest multiple
    /// of the keys enqueued per step below the image count, at least one step's keys, at most
    /// 4096, MoCo's CIFAR queue), and the sentence that says so; None for a set length.
    pub fn sized_to(&self, images: usize, ctx: &RunContext) -> Option<(MoCoConfig, String)> {
        if self.queue != QUEUE_AUTO {
            return None;
        }
        let keys = self.keys_per_step(ctx);
        let below = (images as i64 - 1).max(0) / keys * keys;
        let queue = below.clamp(keys, (4096 / keys * keys).max(keys));
        let said = format!(
            "method.queue = \"auto\": {queue} keys (the largest multiple of the {keys} keys enqueued per step below the {images} \
             images, at most 4096; set method.queue to choose)"
        );
        Some((MoCoConfig { queue, ..self.clone() }, said))
    }

    pub fn validate(&self, ctx: &RunContext) -> Result<()> {
        let keys = self.keys_per_step(ctx);
        if self.queue > 1 << 22 {
            bail!(
                "method.queue = {} is beyond what unmix runs (at most {} keys); a typing mistake?",
                self.queue,
                1 << 22
            );
        }
        if self.queue != QUEUE_AUTO && (self.queue < 0 || self.queue % keys != 0) {
            bail!(
                "method.queue = {} must be 0 (in-batch keys, MoCo v3), \"auto\" (sized to the data) or a positive multiple of the keys enqueued per step ({keys} = train.batch_size{}{})",
                self.queue,
                if self.symmetric { " x 2, symmetric" } else { "" },
                if ctx.processes > 1 { format!(" x {} processes", ctx.processes) } else { String::new() },
            );
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            bail!("method.momentum = {} must be in [0, 1]", self.momentum);
        }
        positive("method.temperature", self.temperature)?;
        if self.predictor_hidden < 0 || self.predictor_hidden > super::MAX_WIDTH {
            bail!("method.predictor_hidden = {} must be in 0..=65536 (0: no predictor)", self.predictor_hidden);
        }
        view2_only("MoCo", "its mixed query is scored against the keys of view 2", ctx)
    }
}

pub struct MoCo {
    cfg: MoCoConfig,
    vs_q: nn::VarStore,
    vs_k: nn::VarStore,
    q: Encoder,
    k: Encoder,
    predictor: Option<crate::model::head::Head>,
    /// (dim, K), columns L2-normalized.
    queue: Tensor,
    /// Next queue column to overwrite, kept as a tensor so it travels with checkpoints.
    ptr: i64,
    feats: Option<Tensor>,
    dist: Option<std::sync::Arc<crate::dist::Dist>>,
}

impl MoCo {
    pub fn new(device: Device, backbone: &ResNetConfig, cfg: MoCoConfig) -> Self {
        let vs_q = nn::VarStore::new(device);
        let mut vs_k = nn::VarStore::new(device);
        let head = cfg.projector().head();
        let q = Encoder::new(&vs_q.root(), backbone, &head);
        let k = Encoder::new(&vs_k.root(), backbone, &head);
        // The key encoder starts as a copy of the query encoder and is never trained by gradient.
        init_target(&mut vs_k, &vs_q);
        // Created after the key encoder's copy: the predictor exists on the query side only.
        let predictor = (cfg.predictor_hidden > 0).then(|| {
            crate::model::head::Head::new(
                &(vs_q.root() / "predictor"),
                cfg.dim,
                &cfg.projector().predictor(cfg.predictor_hidden),
            )
        });
        let queue = if cfg.queue > 0 {
            normalize(&Tensor::randn([cfg.dim, cfg.queue], (Kind::Float, device)).transpose(0, 1))
                .transpose(0, 1)
                .contiguous()
        } else {
            Tensor::zeros([cfg.dim, 0], (Kind::Float, device))
        };
        MoCo { cfg, vs_q, vs_k, q, k, predictor, queue, ptr: 0, feats: None, dist: None }
    }

    pub fn queue(&self) -> &Tensor {
        &self.queue
    }

    /// Keys of `x` through the key encoder, with the batch shuffled before the forward pass and
    /// unshuffled after, so split-BN groups mix samples differently for queries and keys.
    /// Returns this process's keys and the keys of the whole (global) batch for the queue.
    ///
    /// Across processes (shuffle BN as the authors' multi-GPU code): the global batch is gathered,
    /// shuffled with the same permutation on every process (the step's stream), each process
    /// encodes its interleaved share of the shuffled batch (the group a single process's split
    /// BN would form), and the keys are gathered and unshuffled, which gives exactly the keys of
    /// one process with split BN over the global batch.
    fn keys(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> anyhow::Result<(Tensor, Tensor)> {
        tch::no_grad(|| {
            let global = global_batch(self.dist.as_deref(), x, Grad::None)?;
            let n = global.size()[0];
            let mut perm: Vec<i64> = (0..n).collect();
            perm.shuffle(rng);
            let idx = Tensor::from_slice(&perm).to_device(x.device());
            let unshuffle = idx.argsort(0, false);
            let shuffled = global.index_select(0, &idx);
            match &self.dist {
                None => {
                    let k = normalize(&self.k.forward_t(&shuffled, true)).index_select(0, &unshuffle);
                    Ok((k.shallow_clone(), k))
                }
                Some(d) => {
                    let mine = normalize(&self.k.forward_t(&d.shard_of(&shuffled), true));
                    let all = global_batch(Some(d), &mine, Grad::None)?.index_select(0, &unshuffle);
                    Ok((d.shard_of(&all), all))
                }
            }
        })
    }

    /// Query-side output: the head, then the predictor (MoCo v3).
    fn query_parts(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (f, z) = self.q.forward_parts(x, true);
        match &self.predictor {
            Some(p) => (f, p.forward_t(&z, true)),
            None => (f, z),
        }
    }

    /// The normalized queries of a step: view 1's (None with i-Mix, whose mixed batch takes its
    /// place) and the i-Mix / MixCo mixtures' (MixCo's forwarded in one pass after view 1's).
    /// View 1's backbone features are kept for the online probe (none with i-Mix).
    fn queries(&mut self, x1: &Tensor, virt: Option<&VirtualMix>) -> (Option<Tensor>, Option<Tensor>) {
        let Some(v) = virt else {
            let (f1, q1) = self.query_parts(x1);
            self.feats = Some(f1.detach());
            return (Some(normalize(&q1)), None);
        };
        if v.replaces_view1 {
            return (None, Some(normalize(&self.query_parts(&v.images).1)));
        }
        let n = x1.size()[0];
        let (f, q) = self.query_parts(&Tensor::cat(&[x1, &v.images], 0));
        self.feats = Some(f.narrow(0, 0, n).detach());
        let q = normalize(&q);
        (Some(q.narrow(0, 0, n)), Some(q.narrow(0, n, q.size()[0] - n)))
    }

    /// View 1's normalized queries and the Un-Mix batch's raw query outputs from one pass of the
    /// two batches as one (`unmix.one_pass`), each normalized by batch norm on its own.
    fn queries_with_mixture(&mut self, x1: &Tensor, m: &Mixed) -> (Tensor, Tensor) {
        let n = x1.size()[0];
        let mut norms = self.q.norms();
        norms.extend(self.predictor.iter().flat_map(|p| p.norms()));
        let (f, q) = {
            let _parts = Parts::set(norms, &[n, m.images.size()[0]]);
            self.query_parts(&Tensor::cat(&[x1, &m.images], 0))
        };
        self.feats = Some(f.narrow(0, 0, n).detach());
        (normalize(&q.narrow(0, 0, n)), q.narrow(0, n, q.size()[0] - n))
    }

    /// InfoNCE of local queries against their keys: the queue's negatives (MoCo v1/v2) or the
    /// other keys of the global batch (queue = 0, MoCo v3); `k_all` holds the global batch's keys.
    fn score(&self, q: &Tensor, k: &Tensor, k_all: &Tensor, queue: &Tensor) -> Tensor {
        if self.cfg.queue > 0 {
            return info_nce(q, k, queue, self.cfg.temperature);
        }
        info_nce_in_batch(q, k_all, &self.in_batch_positives(q), self.cfg.temperature)
    }

    /// [`Self::score`] per query (the Un-Mix term weighs each query by its mixing group's lambda).
    fn score_rows(&self, q: &Tensor, k: &Tensor, k_all: &Tensor, queue: &Tensor) -> Tensor {
        if self.cfg.queue > 0 {
            return info_nce_rows(q, k, queue, self.cfg.temperature);
        }
        info_nce_in_batch_rows(q, k_all, &self.in_batch_positives(q), self.cfg.temperature)
    }

    /// The Un-Mix term of the mixed queries' raw outputs `out` against keys `k`: reversed (within
    /// each mixing group) before normalizing, as the authors do. One mixing group scores the
    /// batch's mean loss; several weigh each query by its group's lambda (the same value up to
    /// float rounding for one group: that path keeps one-group runs bit-identical to before).
    fn unmix_term(&self, m: &Mixed, out: &Tensor, k: &Tensor, k_all: &Tensor, queue: &Tensor) -> Result<Tensor> {
        let q = |p: Pairing| normalize(&p.arrange(out));
        if m.draws().len() == 1 {
            m.term(|p| Ok(self.score(&q(p), k, k_all, queue)))
        } else {
            m.term_per_sample(|p| Ok(self.score_rows(&q(p), k, k_all, queue)))
        }
    }

    /// Where query i's own key sits among the keys gathered from every process.
    fn in_batch_positives(&self, q: &Tensor) -> Tensor {
        let n = q.size()[0];
        let (rank, world) = self.dist.as_ref().map_or((0, 1), |d| (d.rank as i64, d.world as i64));
        Tensor::arange(n, (Kind::Int64, q.device())) * world + rank
    }

    /// Writes `keys` into the queue from `ptr` on, wrapping around its end: a full batch fills
    /// whole slots as the authors' code (K is a multiple of the keys per step), a partial last
    /// batch (train.drop_last = false) or a batch size changed on resume wraps instead of
    /// overflowing.
    fn enqueue(&mut self, keys: &Tensor) {
        let k = self.cfg.queue;
        if k == 0 {
            return;
        }
        let keys = keys.transpose(0, 1);
        let n = keys.size()[1];
        // More keys than slots: only the newest K are kept.
        let (keys, n) = if n > k { (keys.narrow(1, n - k, k), k) } else { (keys, n) };
        tch::no_grad(|| {
            let first = n.min(k - self.ptr);
            self.queue.narrow(1, self.ptr, first).copy_(&keys.narrow(1, 0, first));
            if first < n {
                self.queue.narrow(1, 0, n - first).copy_(&keys.narrow(1, first, n - first));
            }
        });
        self.ptr = (self.ptr + n) % k;
    }
}

impl Method for MoCo {
    fn trainable(&self) -> &nn::VarStore {
        &self.vs_q
    }

    fn loss(
        &mut self,
        views: &[Tensor],
        mixture: Option<&Mixture>,
        _info: &StepInfo,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Tensor> {
        // Momentum update of the key encoder before the forward pass, as the authors' code.
        ema_update(&self.vs_k, &self.vs_q, self.cfg.momentum);
        let (x1, x2) = (&views[0], &views[1]);
        // A snapshot: the queue is overwritten in place below, before the backward pass needs it.
        let queue = self.queue.copy();
        let virt = mixture.and_then(Mixture::virtual_labels);
        let unmixed = mixture.and_then(Mixture::unmix);
        // With unmix.one_pass the mixture's query outputs come from view 1's pass.
        let (q1, q_virt, mut mix_out) = match unmixed.filter(|m| m.one_pass) {
            Some(m) => {
                let (q1, out) = self.queries_with_mixture(x1, m);
                (Some(q1), None, Some(out))
            }
            None => {
                let (q1, q_virt) = self.queries(x1, virt);
                (q1, q_virt, None)
            }
        };
        let (k2, k2_all) = self.keys(x2, rng)?;
        // The clean queries' loss (not with i-Mix, whose mixed queries take their place) and the
        // i-Mix / MixCo term of the mixed queries against the batch's keys and the queue.
        let clean = q1.map(|q1| self.score(&q1, &k2, &k2_all, &queue));
        let rival = virt
            .zip(q_virt)
            .map(|(v, q)| v.term(&batch_similarities(&q, &k2, Some(&queue)), k2.size()[0], self.cfg.temperature));
        let mut loss = clean.into_iter().chain(rival).reduce(|a, b| a + b).expect("a query term");
        // The mixed query (view 1 mixed with its reversed batch) is scored against the unmixed keys
        // and the same queue; its raw output is reversed before normalizing, as the authors do.
        let q_mix = unmixed.map(|m| (m, mix_out.take().unwrap_or_else(|| self.query_parts(&m.images).1)));
        if let Some((m, out)) = &q_mix {
            loss = loss + self.unmix_term(m, out, &k2, &k2_all, &queue)?;
        }
        let keys = if self.cfg.symmetric {
            let q2 = normalize(&self.query_parts(x2).1);
            let (k1, k1_all) = self.keys(x1, rng)?;
            loss = loss + self.score(&q2, &k1, &k1_all, &queue);
            if let Some((m, out)) = &q_mix {
                // The authors' CIFAR code forwards the mixture again for this direction.
                let again = self.cfg.unmix_pass_per_direction.then(|| self.query_parts(&m.images).1);
                loss = loss + self.unmix_term(m, again.as_ref().unwrap_or(out), &k1, &k1_all, &queue)?;
            }
            Tensor::cat(&[k1_all, k2_all], 0)
        } else {
            k2_all
        };
        // The queue only ever receives unmixed keys.
        self.enqueue(&keys);
        Ok(loss)
    }

    fn take_features(&mut self) -> Option<Tensor> {
        self.feats.take()
    }

    fn to_double(&mut self) {
        self.vs_q.double();
        self.vs_k.double();
        self.queue = self.queue.to_kind(Kind::Double);
    }

    fn set_dist(&mut self, dist: Option<std::sync::Arc<crate::dist::Dist>>) {
        self.dist = dist;
    }

    fn embed(&self, x: &Tensor, features: Features) -> Tensor {
        self.q.embed(x, features)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut s = stores_state(&[("q.", &self.vs_q), ("k.", &self.vs_k)]);
        s.push(("moco.queue".into(), self.queue.shallow_clone()));
        s.push(("moco.ptr".into(), Tensor::from_slice(&[self.ptr])));
        s
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> anyhow::Result<()> {
        load_stores(&[("q.", &self.vs_q), ("k.", &self.vs_k)], state)?;
        copy_named(&[("moco.queue".to_string(), self.queue.shallow_clone())], state, "")?;
        let ptr = state
            .iter()
            .find(|(n, _)| n == "moco.ptr")
            .ok_or_else(|| anyhow::anyhow!("checkpoint has no tensor `moco.ptr`"))?;
        let ptr = if ptr.1.numel() == 1 { ptr.1.f_int64_value(&[0]).unwrap_or(-1) } else { -1 };
        let k = self.cfg.queue;
        if !(ptr == 0 || (0..k).contains(&ptr)) {
            bail!("checkpoint tensor `moco.ptr` = {ptr} is not a position in the queue of {k} keys: the checkpoint is damaged");
        }
        self.ptr = ptr;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::{MixDraw, MixKind};
    use crate::model::{named_trainable, named_variables};
    use rand::SeedableRng;

    fn tiny(symmetric: bool) -> MoCo {
        tch::manual_seed(0);
        let backbone = ResNetConfig::tiny(2);
        let cfg = MoCoConfig { dim: 8, queue: 16, momentum: 0.9, temperature: 0.2, symmetric, ..Default::default() };
        MoCo::new(Device::Cpu, &backbone, cfg)
    }

    #[test]
    fn queue_gets_unmixed_keys_and_keys_get_no_gradient() {
        let mut m = tiny(true);
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.3 });
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let loss = m
            .loss(
                &[x1.shallow_clone(), x2.shallow_clone()],
                Some(&mixed.clone().into()),
                &StepInfo::default(),
                &mut rng,
            )
            .unwrap();
        assert_eq!(m.ptr, 8, "symmetric enqueues 2N keys");
        // The enqueued columns are unit vectors equal to the key encoder's (eval-independent) keys.
        let cols = m.queue.narrow(1, 0, 8);
        let norms = cols.norm_scalaropt_dim(2, [0i64].as_slice(), false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
        loss.backward();
        for (_, t) in named_trainable(&m.vs_q) {
            assert!(t.grad().defined(), "query encoder receives gradient");
        }
        for (name, t) in named_variables(&m.vs_k) {
            assert!(!t.requires_grad(), "key encoder variable {name} must be frozen");
            assert!(!t.grad().defined(), "key encoder variable {name} got a gradient");
        }
    }

    #[test]
    fn a_second_mixture_pass_per_direction_keeps_gradients_and_moves_batch_norm_statistics() {
        // Symmetric MoCo + Un-Mix, float64, one step from the same state: forwarding the mixture
        // again for the second direction (the authors' CIFAR code) gives the same gradients, and
        // one more batch-norm update of the query encoder's running statistics.
        // One network and one batch for both, independent of libtorch's global generator
        // (shared by the tests running beside this one).
        let net = tiny(true);
        let (x1, x2) = (normal_batch(3, 4), normal_batch(4, 4));
        let step = |again: bool| {
            let mut m = tiny(true);
            m.load_state(&net.state()).unwrap();
            m.cfg.unmix_pass_per_direction = again;
            m.to_double();
            let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.3 });
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let views = [x1.shallow_clone(), x2.shallow_clone()];
            let loss = m.loss(&views, Some(&mixed.into()), &StepInfo::default(), &mut rng).unwrap();
            loss.backward();
            let grads: Vec<Tensor> = named_trainable(&m.vs_q).into_iter().map(|(_, t)| t.grad().copy()).collect();
            let stats: Vec<(String, Tensor)> = named_variables(&m.vs_q)
                .into_iter()
                .filter(|(n, _)| n.ends_with("running_mean"))
                .map(|(n, t)| (n, t.copy()))
                .collect();
            (loss.double_value(&[]), grads, stats)
        };
        let (l1, g1, s1) = step(false);
        let (l2, g2, s2) = step(true);
        assert!((l1 - l2).abs() <= 1e-12 * l1.abs(), "{l1} vs {l2}");
        for (a, b) in g1.iter().zip(&g2) {
            let d = (a - b).abs().max().double_value(&[]);
            assert!(d <= 1e-10 * (1.0 + a.abs().max().double_value(&[])), "gradients differ by {d}");
        }
        let moved = s1.iter().zip(&s2).filter(|((_, a), (_, b))| !a.allclose(b, 1e-12, 1e-12, false)).count();
        assert_eq!(moved, s1.len(), "every query batch norm takes the extra update");
    }

    /// One MoCo + Un-Mix step in float64 from the network `net`'s state on views x1, x2 (mixture
    /// drawn by `draw`), the mixture forwarded with view 1 or on its own: the loss, every query
    /// gradient, every running statistic, the queue and the probe's features after the step.
    fn float64_step(
        net: &MoCo,
        make: &dyn Fn() -> MoCo,
        x1: &Tensor,
        x2: &Tensor,
        draw: &[MixDraw],
        one_pass: bool,
    ) -> (f64, Vec<(String, Tensor)>) {
        let mut m = make();
        m.load_state(&net.state()).unwrap();
        m.to_double();
        let mut mixed = Mixed::grouped(x1, draw.to_vec()).unwrap();
        mixed.one_pass = one_pass;
        let views = [x1.shallow_clone(), x2.shallow_clone()];
        let loss =
            m.loss(&views, Some(&mixed.into()), &StepInfo::default(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        loss.backward();
        let mut out: Vec<(String, Tensor)> =
            named_trainable(&m.vs_q).into_iter().map(|(n, t)| (format!("grad {n}"), t.grad().copy())).collect();
        out.extend(named_variables(&m.vs_q).into_iter().filter(|(n, _)| n.contains("running")));
        out.push(("queue".into(), m.queue.copy()));
        out.push(("features".into(), m.take_features().unwrap()));
        (loss.double_value(&[]), out)
    }

    /// A batch from a seeded stream of its own (libtorch's global generator is shared by the
    /// tests running beside this one).
    fn normal_batch(seed: u64, n: i64) -> Tensor {
        use rand_distr::Distribution;
        let mut draw = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f64> = (0..n * 64).map(|_| rand_distr::StandardNormal.sample(&mut draw)).collect();
        Tensor::from_slice(&v).view([n, 1, 8, 8])
    }

    type Maker = Box<dyn Fn() -> MoCo>;

    #[test]
    fn one_pass_for_view1_and_the_mixture_equals_two_passes_in_float64() {
        // unmix.one_pass: the two batches as one through the query encoder, batch norm per batch
        // (in its split groups, standard and channels-last memory; an MLP head with BN and a
        // predictor; the symmetric loss; two mixing groups): the loss, gradients, running
        // statistics (updated batch after batch, as two passes leave them), queue and features
        // equal those of separate passes to float64 rounding.
        let cases: Vec<(&str, Maker)> = vec![
            ("asymmetric, 2 BN groups", Box::new(|| tiny(false))),
            ("symmetric, 2 BN groups", Box::new(|| tiny(true))),
            (
                "channels-last, 2 BN groups",
                Box::new(|| {
                    tch::manual_seed(0);
                    let backbone = ResNetConfig { channels_last: true, ..ResNetConfig::tiny(2) };
                    let cfg = MoCoConfig { dim: 8, queue: 16, momentum: 0.9, temperature: 0.2, ..Default::default() };
                    MoCo::new(Device::Cpu, &backbone, cfg)
                }),
            ),
            (
                "MLP head with BN and a predictor",
                Box::new(|| {
                    tch::manual_seed(0);
                    let cfg = MoCoConfig {
                        dim: 8,
                        mlp_hidden: 16,
                        mlp_bn: true,
                        predictor_hidden: 16,
                        queue: 16,
                        temperature: 0.2,
                        ..Default::default()
                    };
                    MoCo::new(Device::Cpu, &ResNetConfig::tiny(2), cfg)
                }),
            ),
        ];
        let (x1, x2) = (normal_batch(3, 8), normal_batch(4, 8));
        let mixup = MixDraw { kind: MixKind::Mixup, lam: 0.3 };
        for (name, make) in &cases {
            for draws in [vec![mixup], vec![mixup, MixDraw { kind: MixKind::Mixup, lam: 0.8 }]] {
                let net = make();
                let (l2, two) = float64_step(&net, make.as_ref(), &x1, &x2, &draws, false);
                let (l1, one) = float64_step(&net, make.as_ref(), &x1, &x2, &draws, true);
                assert!((l1 - l2).abs() <= 1e-12 * l2.abs(), "{name}, {} groups: loss {l1} vs {l2}", draws.len());
                assert_eq!(one.len(), two.len());
                for ((n, a), (_, b)) in one.iter().zip(&two) {
                    let d = (a - b).abs().max().double_value(&[]);
                    let scale = 1.0 + b.abs().max().double_value(&[]);
                    assert!(d <= 1e-11 * scale, "{name}, {} groups: {n} differs by {d}", draws.len());
                }
                // The statistics did move (the comparison is not of untouched buffers).
                let moved = two
                    .iter()
                    .filter(|(n, t)| n.contains("running_mean") && t.abs().sum(Kind::Double).double_value(&[]) > 0.0);
                assert!(moved.count() > 0, "{name}");
            }
        }
    }

    #[test]
    fn partial_batches_wrap_around_the_queue_and_a_damaged_pointer_is_refused() {
        let mut m = tiny(false);
        let keys = |v: f64, n: i64| Tensor::full([n, 8], v, (Kind::Float, Device::Cpu));
        // K 16: 12 keys, then 12 more (a partial batch, or a batch size changed on resume): the
        // second batch fills columns 12..16 and wraps to 0..8.
        m.enqueue(&keys(1.0, 12));
        m.enqueue(&keys(2.0, 12));
        assert_eq!(m.ptr, 8);
        let col = |m: &MoCo, j: i64| m.queue.double_value(&[0, j]);
        assert_eq!(
            (col(&m, 0), col(&m, 7), col(&m, 8), col(&m, 11), col(&m, 12), col(&m, 15)),
            (2.0, 2.0, 1.0, 1.0, 2.0, 2.0)
        );
        // More keys than slots: the newest 16.
        m.enqueue(&Tensor::arange(20, (Kind::Float, Device::Cpu)).unsqueeze(1).expand([20, 8], false));
        assert_eq!(m.ptr, 8);
        assert_eq!((col(&m, 8), col(&m, 7)), (4.0, 19.0));
        // A pointer outside the queue in a checkpoint is an error, not a panic later.
        let mut state = m.state();
        state.iter_mut().find(|(n, _)| n == "moco.ptr").unwrap().1 = Tensor::from_slice(&[16i64]);
        let e = m.load_state(&state).unwrap_err().to_string();
        assert!(e.contains("moco.ptr") && e.contains("damaged"), "{e}");
    }

    #[test]
    fn unmix_adds_the_lambda_weighted_terms() {
        // With the same step stream, the loss with Un-Mix minus the loss without equals
        // lam * L(mixed) + (1 - lam) * L(reversed mixed outputs), computed here by hand.
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Float, Device::Cpu));
        let mixed = Mixed::new(&x1, MixDraw { kind: MixKind::Mixup, lam: 0.3 });
        let mut a = tiny(false);
        // Tests share libtorch's global RNG, so copy the weights instead of relying on the seed.
        let mut b = tiny(false);
        b.load_state(&a.state()).unwrap();
        let base = a
            .loss(
                &[x1.shallow_clone(), x2.shallow_clone()],
                None,
                &StepInfo::default(),
                &mut ChaCha8Rng::seed_from_u64(5),
            )
            .unwrap()
            .double_value(&[]);
        let queue = b.queue.copy();
        let with = b
            .loss(
                &[x1.shallow_clone(), x2.shallow_clone()],
                Some(&mixed.clone().into()),
                &StepInfo::default(),
                &mut ChaCha8Rng::seed_from_u64(5),
            )
            .unwrap()
            .double_value(&[]);
        // Recompute the terms with network b's weights (momentum update already applied, BN in
        // train mode gives the same batch statistics).
        let out = b.q.forward_t(&mixed.images, true);
        let (k2, _) = b.keys(&x2, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        let direct = info_nce(&normalize(&out), &k2, &queue, 0.2).double_value(&[]);
        let rev = info_nce(&normalize(&out.flip([0])), &k2, &queue, 0.2).double_value(&[]);
        let expect = base + 0.3 * direct + 0.7 * rev;
        assert!((with - expect).abs() < 1e-4, "{with} vs {expect}");
        assert!((direct - rev).abs() > 1e-6, "the reversed term must differ from the direct one");
    }

    /// The soft cross-entropy of one query's logits (plain f64 values) against weights on columns,
    /// written out: -sum_j w_j (l_j - log sum_k exp l_k).
    fn soft_ce(logits: &[f64], weights: &[(usize, f64)]) -> f64 {
        let lse = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
        -weights.iter().map(|&(j, w)| w * (logits[j] - lse)).sum::<f64>()
    }

    /// Query i's logits by hand: q_i . k_j / t over the batch's keys, then q_i . queue column / t.
    fn logits_by_hand(q: &Tensor, k: &Tensor, queue: &Tensor, i: i64, t: f64) -> Vec<f64> {
        let dot = |a: Tensor, b: Tensor| (a * b).sum(Kind::Double).double_value(&[]);
        let keys = (0..k.size()[0]).map(|j| dot(q.get(i), k.get(j)) / t);
        let negs = (0..queue.size()[1]).map(|j| dot(q.get(i), queue.select(1, j)) / t);
        keys.chain(negs).collect()
    }

    fn virtual_mix(
        x1: &Tensor,
        lams: Vec<f64>,
        first: Vec<i64>,
        second: Vec<i64>,
        replaces: bool,
        t: Option<f64>,
    ) -> VirtualMix {
        let images = crate::mix::imix::mix_pairs(x1, &first, &second, &lams);
        VirtualMix {
            images,
            first,
            second,
            lams,
            replaces_view1: replaces,
            temperature: t,
            weight: if replaces { 1.0 } else { 0.5 },
        }
    }

    #[test]
    fn imix_replaces_the_query_loss_with_virtual_labels_over_batch_keys_and_queue() {
        // 4 samples, partners [2, 0, 1, 3] (sample 3 with itself), lambdas [0.6, 0.9, 0.7, 0.5]:
        // loss = mean_i [lam_i CE(l_i, i) + (1 - lam_i) CE(l_i, perm(i))] over the logits of the
        // mixed query i against the 4 keys then the 16 queue columns, T 0.2; worked out in float64.
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let (lams, perm) = (vec![0.6, 0.9, 0.7, 0.5], vec![2i64, 0, 1, 3]);
        let v = virtual_mix(&x1, lams.clone(), (0..4).collect(), perm.clone(), true, None);
        let mut m = tiny(false);
        m.to_double();
        let queue = m.queue.copy();
        let views = [x1.shallow_clone(), x2.shallow_clone()];
        let loss = m.loss(&views, Some(&v.into()), &StepInfo::default(), &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        assert_eq!(m.ptr, 4, "the clean keys enter the queue");
        assert!(m.feats.is_none(), "no clean view-1 features with i-Mix");
        let q = normalize(&m.q.forward_t(&crate::mix::imix::mix_pairs(&x1, &[0, 1, 2, 3], &perm, &lams), true));
        let (k, _) = m.keys(&x2, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        let by_hand: f64 = (0..4)
            .map(|i| {
                let l = logits_by_hand(&q, &k, &queue, i, 0.2);
                soft_ce(&l, &[(i as usize, lams[i as usize]), (perm[i as usize] as usize, 1.0 - lams[i as usize])])
            })
            .sum::<f64>()
            / 4.0;
        assert!((loss.double_value(&[]) - by_hand).abs() < 1e-10, "{} vs {by_hand}", loss.double_value(&[]));
    }

    #[test]
    fn mixco_adds_the_soft_term_of_the_half_batch_mixtures_at_their_temperature() {
        // 4 samples: mixtures 0 = 0.3 x1_0 + 0.7 x1_2 and 1 = 0.8 x1_1 + 0.2 x1_3, forwarded with the
        // clean queries in one pass; loss = InfoNCE(q, k, queue; T 0.2) + 0.5 x mean over the two
        // mixtures of the soft CE at T 0.05 with 0.3 on key 0 / 0.7 on key 2 (0.8 on 1 / 0.2 on 3).
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let v = virtual_mix(&x1, vec![0.3, 0.8], vec![0, 1], vec![2, 3], false, Some(0.05));
        let mixtures = v.images.shallow_clone();
        let mut m = tiny(false);
        m.to_double();
        let queue = m.queue.copy();
        let views = [x1.shallow_clone(), x2.shallow_clone()];
        let loss = m.loss(&views, Some(&v.into()), &StepInfo::default(), &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        assert_eq!(m.ptr, 4, "only the 4 clean keys enter the queue");
        let out = normalize(&m.q.forward_t(&Tensor::cat(&[&x1, &mixtures], 0), true));
        let (q, qm) = (out.narrow(0, 0, 4), out.narrow(0, 4, 2));
        let (k, _) = m.keys(&x2, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        let clean: f64 = (0..4)
            .map(|i| {
                let l = logits_by_hand(&q, &k, &queue, i, 0.2);
                // MoCo's logits: the positive, then the queue.
                let mut row = vec![l[i as usize]];
                row.extend_from_slice(&l[4..]);
                soft_ce(&row, &[(0, 1.0)])
            })
            .sum::<f64>()
            / 4.0;
        let mixed = (soft_ce(&logits_by_hand(&qm, &k, &queue, 0, 0.05), &[(0, 0.3), (2, 0.7)])
            + soft_ce(&logits_by_hand(&qm, &k, &queue, 1, 0.05), &[(1, 0.8), (3, 0.2)]))
            / 2.0;
        let expect = clean + 0.5 * mixed;
        assert!((loss.double_value(&[]) - expect).abs() < 1e-10, "{} vs {expect}", loss.double_value(&[]));
        assert_eq!(m.feats.as_ref().map(|f| f.size()[0]), Some(4), "the probe sees the clean queries");
    }

    #[test]
    fn mixing_groups_weigh_each_groups_queries_by_its_own_lambda() {
        // unmix.groups = 2 over a batch of 4 (the authors' GPUs, each mixing its own images):
        // the Un-Mix term is the mean over the groups of lam_g L(group g's mixed queries) +
        // (1 - lam_g) L(the same, reversed within the group), each against the group's own keys
        // and the shared queue; computed here by hand, group by group, in float64.
        let x1 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let x2 = Tensor::randn([4, 1, 8, 8], (Kind::Double, Device::Cpu));
        let draws = vec![MixDraw { kind: MixKind::Mixup, lam: 0.3 }, MixDraw { kind: MixKind::Mixup, lam: 0.8 }];
        let mixed = Mixed::grouped(&x1, draws).unwrap();
        let mut a = tiny(false);
        let mut b = tiny(false);
        b.load_state(&a.state()).unwrap();
        a.to_double();
        b.to_double();
        let views = [x1.shallow_clone(), x2.shallow_clone()];
        let rng = || ChaCha8Rng::seed_from_u64(5);
        let base = a.loss(&views, None, &StepInfo::default(), &mut rng()).unwrap().double_value(&[]);
        let queue = b.queue.copy();
        let with =
            b.loss(&views, Some(&mixed.clone().into()), &StepInfo::default(), &mut rng()).unwrap().double_value(&[]);
        let out = b.q.forward_t(&mixed.images, true);
        let (k2, _) = b.keys(&x2, &mut rng()).unwrap();
        let mut expect = base;
        // Group g: samples g and g + 2 (interleaved, split batch norm's groups).
        for (g, lam) in [(0i64, 0.3), (1, 0.8)] {
            let (o, k) = (out.slice(0, g, 4, 2), k2.slice(0, g, 4, 2));
            let direct = info_nce(&normalize(&o), &k, &queue, 0.2).double_value(&[]);
            let rev = info_nce(&normalize(&o.flip([0])), &k, &queue, 0.2).double_value(&[]);
            expect += 0.5 * (lam * direct + (1.0 - lam) * rev);
        }
        assert!((with - expect).abs() < 1e-10, "{with} vs {expect}");
        // Not the whole-batch reversal with one lambda.
        let whole = base
            + 0.3 * info_nce(&normalize(&out), &k2, &queue, 0.2).double_value(&[])
            + 0.7 * info_nce(&normalize(&out.flip([0])), &k2, &queue, 0.2).double_value(&[]);
        assert!((with - whole).abs() > 1e-6, "{with} vs {whole}");
    }

    #[test]
    fn per_query_losses_average_to_the_batch_losses() {
        let q = normalize(&Tensor::randn([6, 8], (Kind::Double, Device::Cpu)));
        let k = normalize(&Tensor::randn([6, 8], (Kind::Double, Device::Cpu)));
        let queue = normalize(&Tensor::randn([10, 8], (Kind::Double, Device::Cpu))).transpose(0, 1);
        let rows = info_nce_rows(&q, &k, &queue, 0.2);
        assert_eq!(rows.size(), vec![6]);
        let d = (rows.mean(Kind::Double) - info_nce(&q, &k, &queue, 0.2)).abs().double_value(&[]);
        assert!(d < 1e-12, "{d}");
        // In-batch keys (positives on a shuffled diagonal), against the cross-entropy by hand.
        let pos = Tensor::from_slice(&[2i64, 0, 1, 5, 3, 4]);
        let rows = info_nce_in_batch_rows(&q, &k, &pos, 0.2);
        let logits = q.mm(&k.transpose(0, 1)) / 0.2;
        for i in 0..6 {
            let row = logits.get(i);
            let lse = row.exp().sum(Kind::Double).log().double_value(&[]);
            let want = lse - row.double_value(&[pos.int64_value(&[i])]);
            assert!((rows.double_value(&[i]) - want).abs() < 1e-12, "query {i}");
        }
        let d = (rows.mean(Kind::Double) - info_nce_in_batch(&q, &k, &pos, 0.2)).abs().double_value(&[]);
        assert!(d < 1e-15, "{d}");
    }

    #[test]
    fn moco_v3_options_predictor_on_queries_and_in_batch_keys() {
        let backbone = ResNetConfig::tiny(1);
        let cfg = MoCoConfig {
            dim: 8,
            mlp_hidden: 16,
            mlp_bn: true,
            queue: 0,
            temperature: 0.2,
            predictor_hidden: 16,
            ..Default::default()
        };
        let mut m = MoCo::new(Device::Cpu, &backbone, cfg);
        // The predictor is trained on the query side and absent from the key encoder.
        let names: Vec<String> = crate::model::named_trainable(&m.vs_q).into_iter().map(|(n, _)| n).collect();
        assert!(names.iter().any(|n| n.starts_with("predictor.")));
        assert!(m.vs_k.variables().keys().all(|n| !n.starts_with("predictor.")));
        let x1 = Tensor::randn([6, 1, 8, 8], (Kind::Float, Device::Cpu));
        let x2 = Tensor::randn([6, 1, 8, 8], (Kind::Float, Device::Cpu));
        let loss = m
            .loss(
                &[x1.shallow_clone(), x2.shallow_clone()],
                None,
                &StepInfo::default(),
                &mut ChaCha8Rng::seed_from_u64(3),
            )
            .unwrap()
            .double_value(&[]);
        // By hand: the predicted query against the 6 keys of the batch, positive on the diagonal.
        let q = normalize(&m.query_parts(&x1).1);
        let (k, _) = m.keys(&x2, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let logits = q.mm(&k.transpose(0, 1)) / 0.2;
        let expect = logits.cross_entropy_for_logits(&Tensor::arange(6, (Kind::Int64, Device::Cpu))).double_value(&[]);
        assert!((loss - expect).abs() < 1e-4, "{loss} vs {expect}");
        // No queue: nothing is enqueued.
        assert_eq!(m.queue.size(), vec![8, 0]);
        assert_eq!(m.ptr, 0);
    }
}
