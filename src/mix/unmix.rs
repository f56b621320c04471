//! Un-Mix: the method-agnostic image-mixture component (Shen et al., AAAI 2022).
//!
//! Once per step, view 1 of the batch is mixed with the same batch in reversed order (sample i
//! with sample N-1-i), by global mixup or by CutMix, with one lambda for the whole batch. A method
//! scores the mixed images against its unmixed targets through [`Mixed::term`], which weighs the
//! direct pairing by lambda and the reversed one by 1 - lambda. Nothing here knows about a method.
//!
//! With `unmix.groups = G` the batch is G interleaved groups (group g: samples g, g + G, g + 2G,
//! ..., the groups of split batch norm with `model.bn_splits = G`), each mixed as a batch of its
//! own (reversed within the group, its own draw), as the authors' multi-GPU code mixes each GPU's
//! images and normalizes them on that GPU; a method whose loss is a mean over samples weighs each
//! sample's terms with its group's lambda through [`Mixed::term_per_sample`].

use anyhow::{bail, Result};
use rand::Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Un-Mix settings, the config section `[unmix]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UnMixConfig {
    /// Off: the base method alone, everything else equal.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Probability of global mixup; otherwise CutMix (the authors' `prob`).
    #[serde(default = "half")]
    pub prob: f64,
    /// Beta(alpha, alpha) for lambda.
    #[serde(default = "one")]
    pub alpha: f64,
    /// The unmixed view the mixture is scored against: "view2" (default) or "view1" (methods
    /// whose authors allow either: SimCLR, BYOL and the other non-contrastive ones).
    #[serde(default)]
    pub target: MixTarget,
    /// Mixing groups: the batch is split into this many interleaved groups (group g: samples g,
    /// g + G, ..., split batch norm's groups), each mixed with its own reversed order and its own
    /// draw (kind, lambda, box), as each GPU of the authors' 8-GPU ImageNet runs mixed, and
    /// normalized, its own 32 images. 1 (the default): the whole batch.
    #[serde(default = "one_group")]
    pub groups: usize,
    /// Forward the mixture through the online encoder in one pass with view 1 (the two batches as
    /// one, each normalized by batch norm on its own, running statistics as two passes leave
    /// them) instead of a pass of its own. The same loss up to float rounding; the speed is
    /// measured in docs/benchmarks.md. MoCo only.
    #[serde(default)]
    pub one_pass: bool,
}

impl Default for UnMixConfig {
    fn default() -> Self {
        UnMixConfig { enabled: true, prob: 0.5, alpha: 1.0, target: MixTarget::View2, groups: 1, one_pass: false }
    }
}

fn one_group() -> usize {
    1
}

fn yes() -> bool {
    true
}
fn half() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}

impl UnMixConfig {
    /// Checks the values types cannot; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.prob) {
            bail!("unmix.prob = {} is a probability: use a value in [0, 1]", self.prob);
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            bail!("unmix.alpha = {} must be positive and finite (1.0: lambda uniform, as the authors)", self.alpha);
        }
        if self.groups == 0 || self.groups > 1 << 16 {
            bail!("unmix.groups = {} must be in 1..=65536 (1: mix the whole batch)", self.groups);
        }
        Ok(())
    }

    /// The settings when Un-Mix is on.
    pub fn active(&self) -> Option<&UnMixConfig> {
        self.enabled.then_some(self)
    }
}

/// Which unmixed view the mixture (built from view 1) is scored against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MixTarget {
    View1,
    #[default]
    View2,
}

/// How a mixed batch's outputs are paired with the targets in one of Un-Mix's two terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    /// Mixed sample i with target i (image i's share of the mixture is lambda).
    Direct,
    /// Mixed sample i with its partner: target N-1-i, or the mirror position within its group of
    /// `groups` interleaved groups (share 1 - lambda).
    Reversed { groups: usize },
}

impl Pairing {
    /// `t` in this pairing's order: as it is, or reversed along the batch (within each group).
    pub fn arrange(self, t: &Tensor) -> Tensor {
        match self {
            Pairing::Direct => t.shallow_clone(),
            Pairing::Reversed { groups } => reversed_in_groups(t, groups),
        }
    }
}

/// How the batch was mixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixKind {
    /// `lam * x + (1 - lam) * reversed(x)` everywhere.
    Mixup,
    /// Rows `top..bottom`, columns `left..right` of each image come from its reversed partner.
    CutMix { top: usize, bottom: usize, left: usize, right: usize },
}

/// One step's draw: the mixing kind and the weight of the original image in the mixture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixDraw {
    pub kind: MixKind,
    /// Fraction of image i in mixed sample i (for CutMix, the corrected kept fraction).
    pub lam: f64,
}

impl MixDraw {
    pub fn is_cutmix(&self) -> bool {
        matches!(self.kind, MixKind::CutMix { .. })
    }
}

/// The CutMix box for a drawn `lam` and centre, as the authors' `rand_bbox`: side
/// `floor(S * sqrt(1 - lam))` per image side S, edges at `centre -/+ side / 2` clipped to the image.
/// Returns `(top, bottom, left, right)`, rows then columns, half-open.
pub fn cutmix_box(height: usize, width: usize, lam: f64, cy: usize, cx: usize) -> (usize, usize, usize, usize) {
    let cut = (1.0 - lam).max(0.0).sqrt();
    let cut_h = (height as f64 * cut).floor() as i64;
    let cut_w = (width as f64 * cut).floor() as i64;
    let clip = |v: i64, hi: usize| v.clamp(0, hi as i64) as usize;
    let (cy, cx) = (cy as i64, cx as i64);
    (
        clip(cy - cut_h / 2, height),
        clip(cy + cut_h / 2, height),
        clip(cx - cut_w / 2, width),
        clip(cx + cut_w / 2, width),
    )
}

/// Draws one step's mixture in the authors' order: `r ~ U(0,1)`, `lam ~ Beta(alpha, alpha)`, then
/// (CutMix only) the box centre, row first. `r < prob` means mixup.
pub fn draw(rng: &mut impl Rng, settings: &UnMixConfig, height: usize, width: usize) -> MixDraw {
    let r: f64 = rng.gen();
    let lam: f64 = Beta::new(settings.alpha, settings.alpha).expect("alpha validated positive").sample(rng);
    if r < settings.prob {
        return MixDraw { kind: MixKind::Mixup, lam };
    }
    let cy = rng.gen_range(0..height);
    let cx = rng.gen_range(0..width);
    let (top, bottom, left, right) = cutmix_box(height, width, lam, cy, cx);
    // lam becomes the fraction of the original image that is kept, as the authors correct it.
    let area = (bottom - top) * (right - left);
    let lam = 1.0 - area as f64 / (height * width) as f64;
    MixDraw { kind: MixKind::CutMix { top, bottom, left, right }, lam }
}

/// The batch in reversed order: the partner of sample i is sample N-1-i, as the authors do.
pub fn reversed(t: &Tensor) -> Tensor {
    t.flip([0])
}

/// The batch as [N / G, G, ...]: group g (samples g, g + G, ...) is column g.
fn by_group(t: &Tensor, groups: usize) -> Tensor {
    let size = t.size();
    let mut grouped = vec![size[0] / groups as i64, groups as i64];
    grouped.extend_from_slice(&size[1..]);
    t.reshape(grouped.as_slice())
}

/// Each of `groups` interleaved groups of the batch (group g: samples g, g + G, ...) reversed in
/// place: sample g + jG takes the place of g + (N/G - 1 - j)G (one group: [`reversed`]).
pub fn reversed_in_groups(t: &Tensor, groups: usize) -> Tensor {
    if groups <= 1 {
        return reversed(t);
    }
    by_group(t, groups).flip([0]).reshape(t.size().as_slice())
}

/// Mixes an NCHW batch with its reversed self.
pub fn mix_batch(x: &Tensor, d: &MixDraw) -> Tensor {
    let rev = reversed(x);
    match d.kind {
        MixKind::Mixup => x * d.lam + rev * (1.0 - d.lam),
        MixKind::CutMix { top, bottom, left, right } => {
            let mixed = x.copy();
            if bottom > top && right > left {
                let (h, w) = ((bottom - top) as i64, (right - left) as i64);
                let patch = rev.narrow(2, top as i64, h).narrow(3, left as i64, w);
                mixed.narrow(2, top as i64, h).narrow(3, left as i64, w).copy_(&patch);
            }
            mixed
        }
    }
}

/// A mixed batch ready for a method: the images and the draws that made them (one per group).
pub struct Mixed {
    pub images: Tensor,
    draws: Vec<MixDraw>,
    /// Mixtures of further crops (multi-crop), in the order given to [`Mixed::mix_crops`].
    pub crops: Vec<Tensor>,
    /// Forwarded with view 1 in one pass (`unmix.one_pass`).
    pub one_pass: bool,
}

impl Clone for Mixed {
    /// A shallow copy: the same tensors.
    fn clone(&self) -> Mixed {
        Mixed {
            images: self.images.shallow_clone(),
            draws: self.draws.clone(),
            crops: self.crops.iter().map(Tensor::shallow_clone).collect(),
            one_pass: self.one_pass,
        }
    }
}

impl Mixed {
    /// The whole batch mixed with one draw.
    pub fn new(x: &Tensor, draw: MixDraw) -> Self {
        Mixed { images: mix_batch(x, &draw), draws: vec![draw], crops: Vec::new(), one_pass: false }
    }

    /// Interleaved groups of the batch (group g: samples g, g + G, ...), group g mixed with its own
    /// reversed order by `draws[g]`: the same as mixing each group as a batch of its own.
    pub fn grouped(x: &Tensor, draws: Vec<MixDraw>) -> Result<Self> {
        let (n, g) = (x.size()[0], draws.len() as i64);
        if g == 0 || n % g != 0 {
            bail!("a batch of {n} images does not split into unmix.groups = {g} equal groups");
        }
        if g == 1 {
            return Ok(Mixed::new(x, draws[0]));
        }
        let columns = by_group(x, g as usize);
        let parts: Vec<Tensor> = (0..g).zip(&draws).map(|(i, d)| mix_batch(&columns.select(1, i), d)).collect();
        Ok(Mixed {
            images: Tensor::stack(&parts, 1).reshape(x.size().as_slice()),
            draws,
            crops: Vec::new(),
            one_pass: false,
        })
    }

    /// One step's mixture of `x` under `settings`: `settings.groups` draws from `rng`, group by
    /// group (one group: exactly one [`draw`]).
    pub fn drawn(x: &Tensor, settings: &UnMixConfig, rng: &mut impl Rng) -> Result<Self> {
        let (h, w) = (x.size()[2] as usize, x.size()[3] as usize);
        let draws = (0..settings.groups.max(1)).map(|_| draw(rng, settings, h, w)).collect();
        Ok(Mixed { one_pass: settings.one_pass, ..Mixed::grouped(x, draws)? })
    }

    /// The draw of each group, in batch order.
    pub fn draws(&self) -> &[MixDraw] {
        &self.draws
    }

    fn reversed_pairing(&self) -> Pairing {
        Pairing::Reversed { groups: self.draws.len() }
    }

    /// Mixes further crops of the batch (multi-crop's small crops) with their own reversed
    /// order, as the authors' SwAV code: the step's mixup/CutMix choice for all of them; mixup
    /// with the same lambda, CutMix with a box drawn for the crop's size from the corrected lambda
    /// of view 1 (the authors pass that lambda on to the next crop's box) and its own centre.
    /// The loss keeps view 1's lambda as the weight.
    pub fn mix_crops(&mut self, crops: &[&Tensor], rng: &mut impl Rng) -> Result<()> {
        if crops.is_empty() {
            return Ok(());
        }
        let [d] = self.draws[..] else {
            bail!("multi-crop mixes the whole batch: unmix.groups must be 1 with augment.small_crops")
        };
        for x in crops {
            let (h, w) = (x.size()[2] as usize, x.size()[3] as usize);
            let kind = match d.kind {
                MixKind::Mixup => MixKind::Mixup,
                MixKind::CutMix { .. } => {
                    let cy = rng.gen_range(0..h);
                    let cx = rng.gen_range(0..w);
                    let (top, bottom, left, right) = cutmix_box(h, w, d.lam, cy, cx);
                    MixKind::CutMix { top, bottom, left, right }
                }
            };
            self.crops.push(mix_batch(x, &MixDraw { kind, lam: d.lam }));
        }
        Ok(())
    }

    /// A method's Un-Mix term, `lam * score(Direct) + (1 - lam) * score(Reversed)`: in `score`
    /// the method puts whatever carries the mixture (its outputs of the mixed batch; SwAV: only
    /// the mixture's Sinkhorn code) in the pairing's order with [`Pairing::arrange`], and scores
    /// it against its unmixed targets. Reversing the outputs equals a second forward pass of the
    /// reversed mixture when batch-norm statistics do not depend on the batch's order, as in the
    /// authors' code (one forward pass of the mixture).
    ///
    /// One lambda for the batch: a loss that couples the batch (NT-Xent's negatives, SwAV's
    /// codes, whitening) cannot weigh groups apart, so several groups are refused here (the config
    /// check refuses them first, naming the key).
    pub fn term(&self, score: impl Fn(Pairing) -> Result<Tensor>) -> Result<Tensor> {
        let [d] = self.draws[..] else {
            bail!(
                "unmix.groups = {}: this method's loss couples the whole batch, so it takes one mixing group",
                self.draws.len()
            )
        };
        let direct = score(Pairing::Direct)?;
        let reverse = score(self.reversed_pairing())?;
        Ok(direct * d.lam + reverse * (1.0 - d.lam))
    }

    /// The Un-Mix term of a loss that is a mean over samples (MoCo's cross-entropy per query):
    /// `rows` gives the N per-sample losses of a pairing, and sample i's two terms are weighed by
    /// its group's lambda, `mean_i(lam_g(i) * direct_i + (1 - lam_g(i)) * reversed_i)`, i.e. the
    /// mean over the groups of each group's own Un-Mix term, as the authors' GPUs average their
    /// gradients. One group: [`Mixed::term`] over the rows' mean, up to float rounding.
    pub fn term_per_sample(&self, rows: impl Fn(Pairing) -> Result<Tensor>) -> Result<Tensor> {
        let direct = rows(Pairing::Direct)?;
        let reverse = rows(self.reversed_pairing())?;
        let per_group = direct.size()[0] / self.draws.len() as i64;
        let lams: Vec<f64> = self.draws.iter().map(|d| d.lam).collect();
        // Sample i is in group i mod G.
        let lam = Tensor::from_slice(&lams).to_kind(direct.kind()).to_device(direct.device()).repeat([per_group]);
        let weighted = &direct * &lam + &reverse * (lam.neg() + 1.0);
        Ok(weighted.mean(weighted.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::{Device, Kind};

    fn batch(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(n * c * h * w, (Kind::Float, Device::Cpu)).view([n, c, h, w])
    }

    #[test]
    fn mixup_pairs_sample_i_with_reversed_partner() {
        let x = batch(4, 1, 2, 2);
        let d = MixDraw { kind: MixKind::Mixup, lam: 0.25 };
        let m = mix_batch(&x, &d);
        for i in 0..4 {
            let expect = x.get(i) * 0.25 + x.get(3 - i) * 0.75;
            let diff = (m.get(i) - expect).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "sample {i} differs by {diff}");
        }
        // Sample 0 = 0.25 * [0,1,2,3] + 0.75 * [12,13,14,15] = [9, 10, 11, 12].
        let v: Vec<f32> = Vec::try_from(m.get(0).flatten(0, -1)).unwrap();
        assert_eq!(v, vec![9.0, 10.0, 11.0, 12.0]);
    }

    #[test]
    fn small_crops_mix_with_their_own_reversed_batch() {
        let x = batch(4, 1, 8, 8);
        let small = batch(4, 1, 4, 4) * -1.0;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Mixup: the same lambda on every crop.
        let mut m = Mixed::new(&x, MixDraw { kind: MixKind::Mixup, lam: 0.25 });
        m.mix_crops(&[&small], &mut rng).unwrap();
        assert_eq!(m.crops.len(), 1);
        let expect = &small * 0.25 + small.flip([0]) * 0.75;
        assert!((&m.crops[0] - expect).abs().max().double_value(&[]) < 1e-6);
        // CutMix: a box sized from the corrected lambda (0.75 -> side floor(4 * 0.5) = 2), pixels
        // inside from the partner, outside from the crop itself.
        let mut m =
            Mixed::new(&x, MixDraw { kind: MixKind::CutMix { top: 0, bottom: 4, left: 0, right: 4 }, lam: 0.75 });
        m.mix_crops(&[&small], &mut rng).unwrap();
        let c = &m.crops[0];
        let from_partner = c.eq_tensor(&small.flip([0])).logical_and(&c.ne_tensor(&small));
        let n = from_partner.get(0).sum(Kind::Int64).int64_value(&[]);
        assert!((1..=4).contains(&n), "{n} pixels from the partner");
        let kept = c.eq_tensor(&small).sum(Kind::Int64).int64_value(&[]);
        assert!(kept >= 4 * 16 - 4 * 4, "{kept}");
        // Multi-crop mixes the whole batch: several mixing groups are refused.
        let d = MixDraw { kind: MixKind::Mixup, lam: 0.5 };
        let mut m = Mixed::grouped(&x, vec![d, d]).unwrap();
        let e = m.mix_crops(&[&small], &mut rng).unwrap_err().to_string();
        assert!(e.contains("unmix.groups"), "{e}");
    }

    #[test]
    fn cutmix_box_follows_the_authors_rule() {
        // lam 0.75: side floor(32 * 0.5) = 16, half 8, centre (10, 3): rows 2..18, cols 0..11 (clipped).
        assert_eq!(cutmix_box(32, 32, 0.75, 10, 3), (2, 18, 0, 11));
        // lam 1: empty box; lam 0: the whole image when centred.
        let (t, b, l, r) = cutmix_box(28, 28, 1.0, 5, 5);
        assert_eq!((b - t) * (r - l), 0);
        assert_eq!(cutmix_box(28, 28, 0.0, 14, 14), (0, 28, 0, 28));
        // Odd side: floor(7 * sqrt(0.5)) = 4, half 2.
        assert_eq!(cutmix_box(7, 7, 0.5, 6, 0), (4, 7, 0, 2));
    }

    #[test]
    fn cutmix_lambda_is_kept_fraction() {
        let s = UnMixConfig { prob: 0.0, ..Default::default() };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let d = draw(&mut rng, &s, 28, 28);
            let MixKind::CutMix { top, bottom, left, right } = d.kind else { panic!("prob 0 must give CutMix") };
            let kept = 1.0 - ((bottom - top) * (right - left)) as f64 / 784.0;
            assert!((d.lam - kept).abs() < 1e-12);
            let x = batch(6, 2, 28, 28);
            let m = mix_batch(&x, &d);
            // Pixels equal to the original image (not its partner) form exactly the kept fraction.
            let same = m.eq_tensor(&x).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
            assert!((same - d.lam).abs() < 1e-6, "kept {same} vs lam {}", d.lam);
            // Inside the box, sample i holds sample 5-i.
            if bottom > top && right > left {
                let v = m.int64_value(&[1, 1, top as i64, left as i64]);
                let p = x.int64_value(&[4, 1, top as i64, left as i64]);
                assert_eq!(v, p);
            }
        }
    }

    #[test]
    fn draw_order_is_r_then_lambda_then_centre() {
        let s = UnMixConfig::default();
        let mut a = ChaCha8Rng::seed_from_u64(11);
        let mut b = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..50 {
            let d = draw(&mut a, &s, 32, 32);
            let r: f64 = b.gen();
            let lam: f64 = Beta::new(1.0, 1.0).unwrap().sample(&mut b);
            if r < 0.5 {
                assert_eq!(d, MixDraw { kind: MixKind::Mixup, lam });
            } else {
                let cy = b.gen_range(0..32);
                let cx = b.gen_range(0..32);
                let (top, bottom, left, right) = cutmix_box(32, 32, lam, cy, cx);
                assert_eq!(d.kind, MixKind::CutMix { top, bottom, left, right });
            }
        }
    }

    #[test]
    fn both_kinds_occur_at_prob_half_and_lambda_is_uniform() {
        let s = UnMixConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut mixup, mut lam_sum, n) = (0, 0.0, 4000);
        for _ in 0..n {
            let d = draw(&mut rng, &s, 32, 32);
            if !d.is_cutmix() {
                mixup += 1;
                lam_sum += d.lam;
            }
        }
        let frac = mixup as f64 / n as f64;
        assert!((frac - 0.5).abs() < 0.04, "mixup fraction {frac}");
        let mean = lam_sum / mixup as f64;
        assert!((mean - 0.5).abs() < 0.03, "Beta(1,1) mean {mean}");
    }

    #[test]
    fn loss_weights_direct_and_reversed_outputs() {
        // Worked by hand: outputs [1, 2, 3], targets [1, 0, 0], score = mean((out - target)^2).
        // direct: ((0)^2 + 2^2 + 3^2)/3 = 13/3; reversed outputs [3, 2, 1]: (4 + 4 + 1)/3 = 3.
        // lam 0.25: 0.25 * 13/3 + 0.75 * 3 = 1.0833.. + 2.25 = 3.3333..
        let x = batch(3, 1, 1, 1);
        let mixed = Mixed::new(&x, MixDraw { kind: MixKind::Mixup, lam: 0.25 });
        let out = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let target = Tensor::from_slice(&[1.0f32, 0.0, 0.0]);
        let l = mixed.term(|p| Ok((p.arrange(&out) - &target).square().mean(Kind::Float))).unwrap();
        assert!((l.double_value(&[]) - 10.0 / 3.0).abs() < 1e-6, "{}", l.double_value(&[]));
    }

    #[test]
    fn groups_mix_as_batches_of_their_own() {
        // Two interleaved groups of 3 (samples 0, 2, 4 and 1, 3, 5, split batch norm's groups):
        // group 0 by mixup (lam 0.25), group 1 by CutMix of the top-left pixel (kept fraction
        // 0.75); each sample's partner is the mirror position in its own group.
        let x = batch(6, 1, 2, 2);
        let d0 = MixDraw { kind: MixKind::Mixup, lam: 0.25 };
        let d1 = MixDraw { kind: MixKind::CutMix { top: 0, bottom: 1, left: 0, right: 1 }, lam: 0.75 };
        let m = Mixed::grouped(&x, vec![d0, d1]).unwrap();
        assert_eq!(m.draws(), &[d0, d1]);
        for i in [0, 2, 4] {
            let expect = x.get(i) * 0.25 + x.get(4 - i) * 0.75;
            assert!((m.images.get(i) - expect).abs().max().double_value(&[]) < 1e-6, "sample {i}");
        }
        for i in [1, 3, 5] {
            let partner = 6 - i;
            let v: Vec<f32> = Vec::try_from(m.images.get(i).flatten(0, -1)).unwrap();
            let own: Vec<f32> = Vec::try_from(x.get(i).flatten(0, -1)).unwrap();
            assert_eq!(v[0], x.double_value(&[partner, 0, 0, 0]) as f32, "sample {i}: the box from {partner}");
            assert_eq!(&v[1..], &own[1..], "sample {i}: outside the box its own pixels");
        }
        // As mixing each group as a batch alone (what each of the authors' GPUs did).
        let group = |g: i64| x.slice(0, g, 6, 2);
        let alone = Tensor::stack(&[mix_batch(&group(0), &d0), mix_batch(&group(1), &d1)], 1).reshape([6, 1, 2, 2]);
        assert!(m.images.equal(&alone));
        // Every group of split batch norm (samples b, b + G, ...) holds the mixtures of exactly
        // one draw: with model.bn_splits = unmix.groups, a BN group of the mixed pass is one
        // GPU's batch of the authors' runs.
        for b in 0..2 {
            let d = [d0, d1][b as usize];
            assert!(m.images.slice(0, b, 6, 2).equal(&mix_batch(&group(b), &d)), "BN group {b}");
        }
        // One group is the whole-batch mixture; a batch that does not split is refused.
        assert!(Mixed::grouped(&x, vec![d0]).unwrap().images.equal(&mix_batch(&x, &d0)));
        let e = Mixed::grouped(&x, vec![d0; 4]).err().unwrap().to_string();
        assert!(e.contains("unmix.groups = 4"), "{e}");
    }

    #[test]
    fn reversal_within_groups_and_one_draw_per_group() {
        let t = Tensor::arange(6, (Kind::Int64, Device::Cpu));
        let v = |t: Tensor| Vec::<i64>::try_from(t).unwrap();
        // Groups interleave: with 2 groups, 0 2 4 and 1 3 5, each reversed in its own places.
        assert_eq!(v(reversed_in_groups(&t, 2)), vec![4, 5, 2, 3, 0, 1]);
        assert_eq!(v(reversed_in_groups(&t, 1)), vec![5, 4, 3, 2, 1, 0]);
        assert_eq!(v(Pairing::Reversed { groups: 3 }.arrange(&t)), vec![3, 4, 5, 0, 1, 2]);
        // Trailing dimensions move with their sample.
        let t2 = Tensor::arange(12, (Kind::Int64, Device::Cpu)).view([6, 2]);
        assert_eq!(v(reversed_in_groups(&t2, 2).flatten(0, -1)), vec![8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3]);
        // Mixed::drawn takes settings.groups draws in turn from the step's stream; with one group
        // exactly the one draw of before.
        let x = batch(8, 1, 4, 4);
        let s = UnMixConfig { groups: 4, ..Default::default() };
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
        let m = Mixed::drawn(&x, &s, &mut a).unwrap();
        let by_hand: Vec<MixDraw> = (0..4).map(|_| draw(&mut b, &s, 4, 4)).collect();
        assert_eq!(m.draws(), &by_hand[..]);
        assert!(by_hand.windows(2).any(|w| w[0].lam != w[1].lam), "each group draws its own lambda");
        let one = UnMixConfig::default();
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(9), ChaCha8Rng::seed_from_u64(9));
        let m = Mixed::drawn(&x, &one, &mut a).unwrap();
        assert_eq!(m.draws(), &[draw(&mut b, &one, 4, 4)]);
        assert!(m.images.equal(&mix_batch(&x, &m.draws()[0])));
        assert_eq!(a.gen::<u64>(), b.gen::<u64>(), "the same draws consumed from the stream");
    }

    #[test]
    fn per_sample_term_weighs_each_group_by_its_lambda() {
        // Worked by hand in float64: 4 samples in 2 interleaved groups (samples 0, 2 with lam
        // 0.25; samples 1, 3 with lam 0.5), per-sample loss (out - target)^2 with outputs
        // [1, 2, 3, 4] and targets [1, 0, 2, 0].
        // direct rows: (1-1)^2, (2-0)^2, (3-2)^2, (4-0)^2 = 0, 4, 1, 16;
        // reversed within groups, outputs [3, 4, 1, 2]: (3-1)^2, (4-0)^2, (1-2)^2, (2-0)^2 = 4, 16, 1, 4.
        // group 0: 0.25 * (0 + 1)/2 + 0.75 * (4 + 1)/2 = 0.125 + 1.875 = 2;
        // group 1: 0.5 * (4 + 16)/2 + 0.5 * (16 + 4)/2 = 5 + 5 = 10; mean 6.
        let x = batch(4, 1, 1, 1).to_kind(Kind::Double);
        let draws = vec![MixDraw { kind: MixKind::Mixup, lam: 0.25 }, MixDraw { kind: MixKind::Mixup, lam: 0.5 }];
        let m = Mixed::grouped(&x, draws).unwrap();
        let out = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0]);
        let target = Tensor::from_slice(&[1.0f64, 0.0, 2.0, 0.0]);
        let l = m.term_per_sample(|p| Ok((p.arrange(&out) - &target).square())).unwrap();
        assert_eq!(l.double_value(&[]), 6.0);
        // A loss over the whole batch cannot be weighed per group: term refuses several groups.
        let e = m.term(|p| Ok((p.arrange(&out) - &target).square().mean(Kind::Double))).err().unwrap().to_string();
        assert!(e.contains("unmix.groups = 2"), "{e}");
        // One group: term over the rows' mean (0.25 * 21/4 + 0.75 * (rows of [4,3,2,1]: 9+9+0+1)/4).
        let one = Mixed::new(&x, MixDraw { kind: MixKind::Mixup, lam: 0.25 });
        let a = one.term_per_sample(|p| Ok((p.arrange(&out) - &target).square())).unwrap().double_value(&[]);
        let b = one.term(|p| Ok((p.arrange(&out) - &target).square().mean(Kind::Double))).unwrap().double_value(&[]);
        assert_eq!((a, b), (0.25 * 21.0 / 4.0 + 0.75 * 19.0 / 4.0, a));
    }

    #[test]
    fn reversing_outputs_equals_forward_of_reversed_mixture() {
        // For a per-sample network (no cross-sample statistics), f(reversed(m)) == reversed(f(m)).
        let x = batch(5, 1, 3, 3) / 10.0;
        let d = MixDraw { kind: MixKind::Mixup, lam: 0.6 };
        let m = mix_batch(&x, &d);
        let f = |t: &Tensor| t.flatten(1, -1).sin().sum_dim_intlist(1, false, Kind::Float);
        let a = reversed(&f(&m));
        let b = f(&reversed(&m));
        assert!((a - b).abs().max().double_value(&[]) < 1e-6);
        // And sample i of the reversed mixture holds image i with weight 1 - lam.
        let mr = reversed(&m);
        let expect = x.get(0) * 0.4 + x.get(4) * 0.6;
        assert!((mr.get(0) - expect).abs().max().double_value(&[]) < 1e-6);
    }
}
