//! Linear probe: a linear classifier trained on frozen features (eval-mode backbone, no head),
//! the papers' standard evaluation. Features are computed once without augmentation (the fast
//! default); the classifier is trained with SGD + momentum on them.

use crate::build::LoadedRun;
use crate::eval::knn::KnnData;
use crate::method::{Features, MethodConfig};
use anyhow::Result;
use serde::Serialize;
use tch::{nn, nn::Module, Device, Kind, Tensor};

/// Probe settings; the presets follow the papers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeConfig {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: i64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Epochs at which lr drops 10x; empty means cosine per epoch.
    pub milestones: Vec<usize>,
    pub seed: u64,
}

impl ProbeConfig {
    /// MoCo: lr 30, 100 epochs, steps at 60/80, batch 256, wd 0.
    pub fn moco() -> Self {
        ProbeConfig {
            epochs: 100,
            lr: 30.0,
            batch_size: 256,
            momentum: 0.9,
            weight_decay: 0.0,
            milestones: vec![60, 80],
            seed: 0,
        }
    }

    /// SwAV CIFAR: lr 0.3, cosine, 100 epochs (batch 256 here; the authors use 32).
    pub fn swav() -> Self {
        ProbeConfig {
            epochs: 100,
            lr: 0.3,
            batch_size: 256,
            momentum: 0.9,
            weight_decay: 0.0,
            milestones: vec![],
            seed: 0,
        }
    }

    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "moco" => Some(Self::moco()),
            "swav" => Some(Self::swav()),
            _ => None,
        }
    }

    fn lr_at(&self, epoch: usize) -> f64 {
        if self.milestones.is_empty() {
            self.lr * 0.5 * (1.0 + (std::f64::consts::PI * epoch as f64 / self.epochs as f64).cos())
        } else {
            self.lr * 0.1f64.powi(self.milestones.iter().filter(|&&m| epoch >= m).count() as i32)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeResult {
    pub top1: f64,
    pub top5: f64,
    pub train_top1: f64,
}

/// Top-1 / top-5 (%) of logits against labels.
pub fn accuracy(logits: &Tensor, labels: &Tensor) -> (f64, f64) {
    let n = labels.size()[0] as f64;
    let k = 5.min(logits.size()[1]);
    let (_, pred) = logits.topk(k, 1, true, true);
    let hit = pred.eq_tensor(&labels.unsqueeze(1));
    let top1 = hit.narrow(1, 0, 1).sum(Kind::Float).double_value(&[]);
    let top5 = hit.sum(Kind::Float).double_value(&[]);
    (100.0 * top1 / n, 100.0 * top5 / n)
}

/// Trains a linear classifier on `train` features (N, D) and reports accuracy on `test`.
pub fn probe(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    test_labels: &Tensor,
    classes: i64,
    cfg: &ProbeConfig,
) -> ProbeResult {
    let device = train.device();
    let vs = nn::VarStore::new(device);
    let dim = train.size()[1];
    let fc = crate::model::head::torch_linear(&(vs.root() / "fc"), dim, classes);
    let params = crate::model::named_trainable(&vs);
    let mut opt = crate::optim::Optimizer::new(params, cfg.momentum, cfg.weight_decay);
    let n = train.size()[0];
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(cfg.seed);
    for epoch in 0..cfg.epochs {
        let lr = cfg.lr_at(epoch);
        let mut order: Vec<i64> = (0..n).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
        // One gather per epoch; batches are then views into it.
        let order = Tensor::from_slice(&order).to_device(device);
        let (xe, ye) = (train.index_select(0, &order), train_labels.index_select(0, &order));
        let mut start = 0;
        while start < n {
            let len = cfg.batch_size.min(n - start);
            let (x, y) = (xe.narrow(0, start, len), ye.narrow(0, start, len));
            let loss = fc.forward(&x).cross_entropy_for_logits(&y);
            opt.zero_grad();
            loss.backward();
            opt.step(lr);
            start += len;
        }
    }
    tch::no_grad(|| {
        let (top1, top5) = accuracy(&fc.forward(test), test_labels);
        let (train_top1, _) = accuracy(&fc.forward(train), train_labels);
        ProbeResult { top1, top5, train_top1 }
    })
}

/// The cached-features probe of a rebuilt network (`unmix linear`, default protocol): features of
/// the train and test splits computed once, unaugmented, then [`probe`]. `preset` defaults to
/// MoCo's settings for MoCo runs and SwAV's otherwise. Returns the result and its protocol sentence.
pub fn cached(
    run: &LoadedRun,
    preset: Option<&str>,
    epochs: Option<usize>,
    lr: Option<f64>,
) -> Result<(ProbeResult, ProbeConfig, String)> {
    let preset = preset.unwrap_or(if matches!(run.cfg.method, MethodConfig::Moco(_)) { "moco" } else { "swav" });
    let mut pc =
        ProbeConfig::preset(preset).ok_or_else(|| anyhow::anyhow!("--preset {preset}: use \"moco\" or \"swav\""))?;
    if let Some(e) = epochs {
        pc.epochs = e;
    }
    if let Some(l) = lr {
        pc.lr = l;
    }
    pc.seed = run.cfg.seed;
    let data = KnnData::load(&run.cfg)?;
    let xt = super::embed_split(&run.cfg, run.device, run.method.as_ref(), &data.bank, Features::Backbone, false)?;
    let xs = super::embed_split(&run.cfg, run.device, run.method.as_ref(), &data.test, Features::Backbone, false)?;
    let yt = labels_tensor(&data.bank.labels, run.device);
    let ys = labels_tensor(&data.test.labels, run.device);
    let r = probe(&xt, &yt, &xs, &ys, data.classes() as i64, &pc);
    let protocol = format!(
        "cached-features linear probe on frozen {}-d backbone features (eval-mode BN, unaugmented, precomputed), preset {preset}: SGD lr {} momentum {} wd {}, {} epochs, {}, batch {}; trained on the {} train split, top-1 on its test split",
        xt.size()[1],
        pc.lr,
        pc.momentum,
        pc.weight_decay,
        pc.epochs,
        if pc.milestones.is_empty() { "cosine".to_string() } else { format!("lr x0.1 at epochs {:?}", pc.milestones) },
        pc.batch_size,
        run.cfg.data.dataset
    );
    Ok((r, pc, protocol))
}

/// Labels as an int64 tensor on `device`.
pub fn labels_tensor(labels: &[u32], device: Device) -> Tensor {
    Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>()).to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_separates_linearly_separable_features() {
        // Three Gaussian blobs far apart in 8-d: a linear probe must reach ~100%.
        tch::manual_seed(1);
        let centers = Tensor::eye(8, (Kind::Float, Device::Cpu)).narrow(0, 0, 3) * 5.0;
        let make = |n: i64| {
            let y = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(3);
            let x = centers.index_select(0, &y) + Tensor::randn([n, 8], (Kind::Float, Device::Cpu)) * 0.5;
            (x, y)
        };
        let (xt, yt) = make(300);
        let (xs, ys) = make(150);
        let cfg = ProbeConfig {
            epochs: 20,
            lr: 0.1,
            batch_size: 32,
            momentum: 0.9,
            weight_decay: 0.0,
            milestones: vec![],
            seed: 0,
        };
        let r = probe(&xt, &yt, &xs, &ys, 3, &cfg);
        assert!(r.top1 > 99.0, "{r:?}");
        assert_eq!(r.top5, 100.0);
        // Shuffled labels cannot be learned beyond chance on the test split.
        // A fixed permutation (Fisher-Yates on an LCG), not libtorch's global generator, which the
        // tests running in parallel threads reseed.
        let mut order: Vec<i64> = (0..300).collect();
        let mut state = 12345u64;
        for i in (1..order.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, ((state >> 33) % (i as u64 + 1)) as usize);
        }
        let perm = Tensor::from_slice(&order);
        let r = probe(&xt, &yt.index_select(0, &perm), &xs, &ys, 3, &cfg);
        assert!(r.top1 < 60.0, "{r:?}");
    }

    #[test]
    fn schedules_follow_presets() {
        let m = ProbeConfig::moco();
        assert_eq!(m.lr_at(0), 30.0);
        assert!((m.lr_at(60) - 3.0).abs() < 1e-12);
        assert!((m.lr_at(85) - 0.3).abs() < 1e-12);
        let s = ProbeConfig::swav();
        assert!((s.lr_at(50) - 0.15).abs() < 1e-12);
    }
}
