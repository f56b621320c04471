//! Image mixtures behind one interface. Once per step the training loop draws the configured
//! mixture from the step's random stream ([`Mixture::drawn`]) and hands it to the method; the
//! method forwards what the mixture asks it to and asks the mixture for its term. Nothing here
//! knows about a method.
//!
//! - [`unmix`]: Un-Mix (Shen et al.), the project's subject: an extra mixed batch of view 1 with
//!   its reversed self, scored against the unmixed targets in two pairings ([`Mixed::term`]).
//! - [`imix`]: i-Mix (Lee et al., ICLR 2021): the query batch mixed in place with a random
//!   partner, per-sample lambdas, virtual labels over the batch's keys ([`VirtualMix::term`]).
//! - [`mixco`]: MixCo (Kim et al. 2020): N/2 mixtures of the two halves of the query batch forwarded
//!   beside the clean queries, soft labels over the batch's keys, added to the method's loss.

pub mod imix;
pub mod mixco;
pub mod unmix;

pub use imix::IMixConfig;
pub use mixco::MixCoConfig;
pub use unmix::*;

use anyhow::Result;
use rand::Rng;
use tch::{Kind, Tensor};

/// Which mixture a run trains with (at most one of `[unmix]`, `[imix]`, `[mixco]` is enabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixtureKind {
    None,
    UnMix,
    IMix,
    MixCo,
}

impl MixtureKind {
    /// The name in run labels, summaries and comparison arms.
    pub fn name(self) -> &'static str {
        match self {
            MixtureKind::None => "none",
            MixtureKind::UnMix => "unmix",
            MixtureKind::IMix => "imix",
            MixtureKind::MixCo => "mixco",
        }
    }

    /// The name in titles and prose: " + Un-Mix", " + i-Mix", " + MixCo", or nothing.
    pub fn suffix(self) -> &'static str {
        match self {
            MixtureKind::None => "",
            MixtureKind::UnMix => " + Un-Mix",
            MixtureKind::IMix => " + i-Mix",
            MixtureKind::MixCo => " + MixCo",
        }
    }
}

/// The settings of the configured mixture, as the training loop draws it.
#[derive(Clone, Debug, PartialEq)]
pub enum MixtureSettings {
    UnMix(UnMixConfig),
    IMix(IMixConfig),
    MixCo(MixCoConfig),
}

/// One step's mixture, as a method receives it.
pub enum Mixture {
    /// Un-Mix: an extra mixed batch, scored in two pairings.
    UnMix(Mixed),
    /// i-Mix or MixCo: mixed queries with virtual labels over the batch's keys.
    Virtual(VirtualMix),
}

impl From<Mixed> for Mixture {
    fn from(m: Mixed) -> Mixture {
        Mixture::UnMix(m)
    }
}

impl From<VirtualMix> for Mixture {
    fn from(m: VirtualMix) -> Mixture {
        Mixture::Virtual(m)
    }
}

impl Mixture {
    /// Draws step's mixture of `views` (view 1 first, then view 2, then any small crops) under
    /// `settings` from the step's stream `rng`.
    pub fn drawn(settings: &MixtureSettings, views: &[Tensor], rng: &mut impl Rng) -> Result<Mixture> {
        Ok(match settings {
            MixtureSettings::UnMix(s) => {
                let mut m = Mixed::drawn(&views[0], s, rng)?;
                // Multi-crop: the small crops at even positions (2, 4, ...) are mixed too.
                let small: Vec<&Tensor> = views.iter().skip(2).step_by(2).collect();
                m.mix_crops(&small, rng)?;
                Mixture::UnMix(m)
            }
            MixtureSettings::IMix(s) => Mixture::Virtual(imix::draw(&views[0], s, rng)),
            MixtureSettings::MixCo(s) => Mixture::Virtual(mixco::draw(&views[0], s, rng)?),
        })
    }

    /// The Un-Mix batch, when this is Un-Mix.
    pub fn unmix(&self) -> Option<&Mixed> {
        match self {
            Mixture::UnMix(m) => Some(m),
            Mixture::Virtual(_) => None,
        }
    }

    /// The mixed queries with virtual labels, when this is i-Mix or MixCo.
    pub fn virtual_labels(&self) -> Option<&VirtualMix> {
        match self {
            Mixture::Virtual(v) => Some(v),
            Mixture::UnMix(_) => None,
        }
    }
}

/// Mixed queries with virtual labels (i-Mix, MixCo): mixed image i is `lams[i]` of image
/// `first[i]` and `1 - lams[i]` of image `second[i]` of view 1, and its label puts those weights on
/// the keys of those two images in the batch (none on any further negatives, such as a queue).
pub struct VirtualMix {
    /// The M mixed images.
    pub images: Tensor,
    /// Per mixed image: the two source images and the first one's share.
    pub first: Vec<i64>,
    pub second: Vec<i64>,
    pub lams: Vec<f64>,
    /// The mixed queries take view 1's place (i-Mix: no clean query term, no extra pass);
    /// otherwise they are forwarded beside the clean queries and their term is added (MixCo).
    pub replaces_view1: bool,
    /// The term's own temperature (MixCo's mix_T); None: the method's.
    pub temperature: Option<f64>,
    /// The term's weight in the loss (MixCo's beta; 1 for i-Mix).
    pub weight: f64,
}

impl VirtualMix {
    /// The virtual labels, (M, N + extra): row i holds `lams[i]` at column `first[i]` and
    /// `1 - lams[i]` at `second[i]` among the batch's `n` keys, zeros on `extra` further columns.
    pub fn targets(&self, n: i64, extra: i64, kind: Kind, device: tch::Device) -> Tensor {
        let m = self.lams.len();
        let mut t = vec![0.0f64; m * (n + extra) as usize];
        let row = (n + extra) as usize;
        for (i, &lam) in self.lams.iter().enumerate() {
            t[i * row + self.first[i] as usize] += lam;
            t[i * row + self.second[i] as usize] += 1.0 - lam;
        }
        Tensor::from_slice(&t).view([m as i64, n + extra]).to_kind(kind).to_device(device)
    }

    /// The mixture's term from the method's similarities `sims` (M, N + extra) of its
    /// (L2-normalized) mixed queries to the keys of the batch's N images, in batch order, then to
    /// any further negatives (a queue): the soft cross-entropy of `sims / T` against
    /// [`VirtualMix::targets`], averaged over the mixed queries, times the weight. `method_t` is the
    /// method's temperature, used unless the mixture has its own. In `sims`' precision (the method
    /// computes them in fp32, or float64).
    pub fn term(&self, sims: &Tensor, n: i64, method_t: f64) -> Tensor {
        let kind = sims.kind();
        let extra = sims.size()[1] - n;
        let targets = self.targets(n, extra, kind, sims.device());
        let t = self.temperature.unwrap_or(method_t);
        let log_p = (sims / t).log_softmax(1, kind);
        (log_p * targets).sum_dim_intlist(1, false, kind).mean(kind) * -self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn vm(lams: Vec<f64>, first: Vec<i64>, second: Vec<i64>, t: Option<f64>, w: f64) -> VirtualMix {
        let images = Tensor::zeros([lams.len() as i64, 1, 1, 1], (Kind::Float, Device::Cpu));
        VirtualMix { images, first, second, lams, replaces_view1: false, temperature: t, weight: w }
    }

    #[test]
    fn virtual_labels_put_lambda_on_the_two_sources() {
        // Two mixtures over a batch of 4 keys and 2 queue columns; a partner equal to the image
        // itself (a permutation's fixed point) gets the whole weight.
        let v = vm(vec![0.75, 0.6], vec![0, 3], vec![2, 3], None, 1.0);
        let t = v.targets(4, 2, Kind::Double, Device::Cpu);
        let rows: Vec<Vec<f64>> = (0..2).map(|i| Vec::try_from(t.get(i)).unwrap()).collect();
        assert_eq!(rows[0], vec![0.75, 0.0, 0.25, 0.0, 0.0, 0.0]);
        assert_eq!(rows[1], vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn term_is_the_soft_cross_entropy_worked_by_hand() {
        // One mixed query with similarities [1, 0, -1] to 2 keys and 1 queue column; T 0.5, lam 0.75
        // on key 0: logits [2, 0, -2], log Z = ln(e^2 + 1 + e^-2), loss = -(0.75 (2 - log Z) +
        // 0.25 (0 - log Z)) = log Z - 1.5; times the weight 2.
        let v = vm(vec![0.75], vec![0], vec![1], Some(0.5), 2.0);
        let sims = Tensor::from_slice(&[1.0f64, 0.0, -1.0]).view([1, 3]);
        let log_z = (1f64.exp().powi(2) + 1.0 + (-2f64).exp()).ln();
        let got = v.term(&sims, 2, 0.1).double_value(&[]);
        assert!((got - 2.0 * (log_z - 1.5)).abs() < 1e-12, "{got}");
        // Without its own temperature the method's is used.
        let v = vm(vec![0.75], vec![0], vec![1], None, 1.0);
        assert!((v.term(&sims, 2, 0.5).double_value(&[]) - (log_z - 1.5)).abs() < 1e-12);
    }
}
