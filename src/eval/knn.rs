//! Weighted kNN classification on L2-normalized features (Wu et al. 2018), the monitor of the
//! authors' CIFAR code: cosine similarity, top-k neighbours, votes weighted by exp(sim / t).

use crate::config::Config;
pub use crate::config::KnnMetric as Metric;
use crate::data::{to_tensor, Split};
use crate::method::Method;
use crate::model::Features;
use anyhow::Result;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};
use unmix_data::augment::ViewRecipe;
use unmix_data::loader::{Dataset, Loader, LoaderConfig};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct KnnResult {
    pub top1: f64,
    pub top5: f64,
    /// Neighbours that voted (the bank size when it is smaller than the configured k).
    pub k: usize,
    pub t: f64,
    pub metric: Metric,
}

/// The kNN bank (train split, unaugmented) and the test split of a config's dataset.
pub struct KnnData {
    pub bank: Split,
    pub test: Split,
    /// Bank and test are the same images (a labeled folder without train/ and val/): each test
    /// image's own bank entry is left out of its vote.
    pub leave_one_out: bool,
}

impl KnnData {
    pub fn load(cfg: &Config) -> Result<KnnData> {
        let (bank, test) = crate::data::load_splits(cfg)?;
        Ok(KnnData { bank, test, leave_one_out: crate::data::leave_one_out(cfg) })
    }

    pub fn classes(&self) -> usize {
        self.bank.classes.max(self.test.classes)
    }

    /// kNN accuracy of `method`'s configured features (`eval.features`, `eval.knn_*`).
    pub fn evaluate(&self, cfg: &Config, device: Device, method: &dyn Method) -> Result<KnnResult> {
        let l2 = cfg.eval.knn_metric == Metric::Cosine;
        let bank = super::embed_split(cfg, device, method, &self.bank, cfg.eval.features, l2)?;
        let test = super::embed_split(cfg, device, method, &self.test, cfg.eval.features, l2)?;
        Ok(self.vote(cfg, &bank, &test))
    }

    /// kNN with the config's readout on features of the bank and test images (in split order).
    fn vote(&self, cfg: &Config, bank: &Tensor, test: &Tensor) -> KnnResult {
        evaluate_with(
            cfg.eval.knn_metric,
            bank,
            &self.bank.labels,
            test,
            &self.test.labels,
            self.classes(),
            cfg.eval.knn_k,
            cfg.eval.knn_t,
            self.leave_one_out,
        )
    }

    /// The raw-pixel baseline with the same readout: kNN on the evaluation crops' normalized pixels
    /// (C x H x W values per image, L2-normalized for the cosine metric), no network at all.
    pub fn evaluate_raw_pixels(&self, cfg: &Config, device: Device) -> Result<KnnResult> {
        let l2 = cfg.eval.knn_metric == Metric::Cosine;
        let recipes = super::eval_recipes(cfg);
        let pixels = |s: &Split| {
            extract(&s.data, &recipes, cfg.eval.batch_size, cfg.data.workers, device, l2, &|x| x.flatten(1, -1))
        };
        let (bank, test) = (pixels(&self.bank)?, pixels(&self.test)?);
        Ok(self.vote(cfg, &bank, &test))
    }
}

/// The protocol sentence written next to every kNN number.
pub fn protocol(cfg: &Config, r: &KnnResult) -> String {
    let what = match cfg.eval.features {
        Features::Backbone => "pooled backbone features of the encoder".to_string(),
        Features::Head => format!("{}-d head output of the encoder", cfg.method.projector().dim),
    };
    protocol_on(cfg, r, &what)
}

/// The protocol sentence of the raw-pixel baseline ([`KnnData::evaluate_raw_pixels`]).
pub fn raw_pixels_protocol(cfg: &Config, r: &KnnResult) -> String {
    protocol_on(cfg, r, "pixels of each evaluation image (after data.mean/std), flattened: no network")
}

fn protocol_on(cfg: &Config, r: &KnnResult, what: &str) -> String {
    // A k above the bank's size votes with the whole bank: say so, with the k asked for.
    let k = if r.k < cfg.eval.knn_k {
        format!("k {} (eval.knn_k = {} clamped to the bank's {} images)", r.k, cfg.eval.knn_k, r.k)
    } else {
        format!("k {}", r.k)
    };
    let rule = match r.metric {
        Metric::Cosine => format!("weighted kNN (cosine, {k}, t {})", r.t),
        Metric::Euclidean => format!("kNN majority vote (Euclidean, {k})"),
    };
    let norm = if r.metric == Metric::Cosine { "L2-normalized " } else { "" };
    let data = match crate::data::EvalFolder::of(cfg) {
        Some(f) if f.same_images() => format!(
            "bank = the labeled folder {} without augmentation; top-1 of each of its images against the others (leave-one-out)",
            f.bank.display()
        ),
        Some(f) => format!(
            "bank = {} without augmentation; top-1 on {}",
            f.bank.display(),
            f.test.display()
        ),
        None => format!("bank = {} train split without augmentation; top-1 on the test split", cfg.data.dataset),
    };
    format!("{rule} on the {norm}{what}; {data}")
}

/// Sets entry (i, start + i) of each row i to `fill`: a query's own bank entry out of reach.
fn mask_self(m: &Tensor, start: i64, fill: f64) -> Tensor {
    let n = m.size()[0];
    let rows = Tensor::arange(n, (Kind::Int64, m.device()));
    let cols = &rows + start;
    let v = Tensor::from(fill).to_kind(m.kind()).to_device(m.device());
    m.index_put(&[Some(rows), Some(cols)], &v, false)
}

/// Class votes of the k nearest bank entries by Euclidean distance, one vote each; ties go to
/// the nearer neighbours (each vote gets a tiny rank-based bonus).
/// With `exclude = Some(start)`, query i is bank entry start + i and does not vote for itself.
pub fn euclidean_votes(
    queries: &Tensor,
    bank: &Tensor,
    bank_labels: &Tensor,
    classes: i64,
    k: usize,
    exclude: Option<i64>,
) -> Tensor {
    let k = (k as i64).min(bank.size()[0] - i64::from(exclude.is_some()));
    // ||q - b||^2 = ||q||^2 + ||b||^2 - 2 q.b; ||q||^2 is constant per row and dropped.
    let d = bank.square().sum_dim_intlist(1, false, Kind::Float).unsqueeze(0) - queries.mm(&bank.transpose(0, 1)) * 2.0;
    let d = match exclude {
        Some(start) => mask_self(&d, start, f64::INFINITY),
        None => d,
    };
    let (_, idx) = d.topk(k, 1, false, true);
    let labels = bank_labels.index_select(0, &idx.flatten(0, -1)).view([-1, k]);
    let bonus = Tensor::arange(k, (Kind::Float, queries.device())).neg() * 1e-4 + 1.0;
    let w = bonus.unsqueeze(0).expand([queries.size()[0], k], false).contiguous();
    Tensor::zeros([queries.size()[0], classes], (Kind::Float, queries.device())).scatter_add(1, &labels, &w)
}

/// Features of every image (no augmentation), in dataset order, on `device`; L2-normalized when
/// `l2` (kNN), raw otherwise (linear probe).
pub fn extract(
    set: &Arc<dyn Dataset>,
    recipes: &Arc<Vec<ViewRecipe>>,
    batch: usize,
    workers: usize,
    device: Device,
    l2: bool,
    embed: &dyn Fn(&Tensor) -> Tensor,
) -> Result<Tensor> {
    let loader = Loader::new(
        set.clone(),
        recipes.clone(),
        LoaderConfig {
            batch_size: batch,
            drop_last: false,
            shuffle: false,
            seed: 0,
            workers,
            prefetch: 2,
            on_bad_image: Default::default(),
        },
        // Evaluation never skips an image: features must stay aligned with their labels.
    );
    let mut feats = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for b in loader.epoch(0, 0) {
            let b = b?;
            let f = embed(&to_tensor(&b.views[0], device)).to_kind(Kind::Float);
            feats.push(if l2 { normalize(&f) } else { f });
        }
        Ok(())
    })?;
    Ok(Tensor::cat(&feats, 0))
}

fn normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12)
}

/// Class scores for each query: sum over its k most similar bank entries of exp(sim / t) on their
/// class. `bank` (M, D) and `queries` (N, D) are L2-normalized; returns (N, classes). With
/// `exclude = Some(start)`, query i is bank entry start + i and does not vote for itself.
pub fn scores(
    queries: &Tensor,
    bank: &Tensor,
    bank_labels: &Tensor,
    classes: i64,
    k: usize,
    t: f64,
    exclude: Option<i64>,
) -> Tensor {
    let k = (k as i64).min(bank.size()[0] - i64::from(exclude.is_some()));
    let sim = queries.mm(&bank.transpose(0, 1));
    let sim = match exclude {
        Some(start) => mask_self(&sim, start, f64::NEG_INFINITY),
        None => sim,
    };
    let (w, idx) = sim.topk(k, 1, true, true);
    let labels = bank_labels.index_select(0, &idx.flatten(0, -1)).view([-1, k]);
    // exp((sim - max) / t): the class scores of a query share the factor exp(max / t), so the
    // vote is the same, and a small t cannot overflow to inf (exp(1 / 0.01) already is in fp32).
    let w = ((&w - w.narrow(1, 0, 1)) / t).exp();
    let n = queries.size()[0];
    Tensor::zeros([n, classes], (Kind::Float, queries.device())).scatter_add(1, &labels, &w)
}

/// The similarity matrix of one chunk of queries against the bank is kept under this size.
const SIMILARITY_BYTES: i64 = 256 << 20;

/// Queries per chunk against a bank of `bank` entries: 512, or fewer where a chunk's similarities
/// (fp32) would pass [`SIMILARITY_BYTES`] (a 1.28M bank: 52), so memory stays bounded at any bank
/// size and time grows linearly with it.
pub fn query_chunk(bank: i64) -> i64 {
    (SIMILARITY_BYTES / (4 * bank.max(1))).clamp(1, 512)
}

/// Top-1 and top-5 accuracy (%) of weighted kNN, processing queries in chunks.
pub fn evaluate(
    bank: &Tensor,
    bank_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    classes: usize,
    k: usize,
    t: f64,
) -> KnnResult {
    evaluate_with(Metric::Cosine, bank, bank_labels, test, test_labels, classes, k, t, false)
}

/// Top-1 and top-5 accuracy (%) of kNN with the given rule.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_with(
    metric: Metric,
    bank: &Tensor,
    bank_labels: &[u32],
    test: &Tensor,
    test_labels: &[u32],
    classes: usize,
    k: usize,
    t: f64,
    leave_one_out: bool,
) -> KnnResult {
    let device = bank.device();
    let exclude = |start: i64| leave_one_out.then_some(start);
    let bl = Tensor::from_slice(&bank_labels.iter().map(|&l| l as i64).collect::<Vec<_>>()).to_device(device);
    let tl = Tensor::from_slice(&test_labels.iter().map(|&l| l as i64).collect::<Vec<_>>()).to_device(device);
    let n = test.size()[0];
    let (mut c1, mut c5) = (0i64, 0i64);
    let chunk = query_chunk(bank.size()[0]);
    let top = 5.min(classes as i64);
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let q = test.narrow(0, start, len);
            let s = match metric {
                Metric::Cosine => scores(&q, bank, &bl, classes as i64, k, t, exclude(start)),
                Metric::Euclidean => euclidean_votes(&q, bank, &bl, classes as i64, k, exclude(start)),
            };
            let (_, pred) = s.topk(top, 1, true, true);
            let truth = tl.narrow(0, start, len).unsqueeze(1);
            let hit = pred.eq_tensor(&truth);
            c1 += hit.narrow(1, 0, 1).sum(Kind::Int64).int64_value(&[]);
            c5 += hit.sum(Kind::Int64).int64_value(&[]);
            start += len;
        }
    });
    KnnResult {
        top1: 100.0 * c1 as f64 / n as f64,
        top5: 100.0 * c5 as f64 / n as f64,
        k: k.min(bank.size()[0] as usize - usize::from(leave_one_out)),
        t,
        metric,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_chunks_bound_the_similarity_matrix_at_any_bank_size() {
        // The fmnist bank keeps the chunk of 512 queries; ImageNet's 1.28M gets 52 (5.1 MB of fp32
        // similarities per query: 254 MiB per chunk), never 0.
        assert_eq!(query_chunk(60_000), 512);
        assert_eq!(query_chunk(1_281_167), 52);
        for bank in [1i64, 1_000, 131_072, 600_000, 1_281_167, 100_000_000_000] {
            let c = query_chunk(bank);
            assert!((1..=512).contains(&c), "{bank}: {c}");
            assert!(c == 1 || c * bank * 4 <= SIMILARITY_BYTES, "{bank}: {c}");
        }
    }

    #[test]
    fn knn_on_a_constructed_bank() {
        // Bank: class 0 near e1, class 1 near e2. Queries near e1 and e2 get their classes.
        let bank = Tensor::from_slice(&[1.0f32, 0.0, 0.9, 0.1, 0.0, 1.0, 0.1, 0.9, 0.2, 0.8]).view([5, 2]);
        let bank = &bank / bank.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        let labels = [0u32, 0, 1, 1, 1];
        let q = Tensor::from_slice(&[0.95f32, 0.05, 0.05, 0.95]).view([2, 2]);
        let q = &q / q.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        let r = evaluate(&bank, &labels, &q, &[0, 1], 2, 2, 0.1);
        assert_eq!(r.top1, 100.0);
        // With k = 5 all neighbours vote; class 1 has 3 members but class 0 is much closer to the first
        // query, so the exp(sim/t) weights must decide it: check the weighted scores by hand.
        let bl = Tensor::from_slice(&[0i64, 0, 1, 1, 1]);
        let s = scores(&q.narrow(0, 0, 1), &bank, &bl, 2, 5, 0.1, None);
        let sims: Vec<f32> = Vec::try_from(q.narrow(0, 0, 1).mm(&bank.transpose(0, 1)).flatten(0, -1)).unwrap();
        // Each vote exp(sim / t), divided by the query's largest one exp(max / t).
        let max = sims.iter().cloned().fold(f32::MIN, f32::max) as f64;
        let e = |x: f32| ((x as f64 - max) / 0.1).exp();
        let expect0 = e(sims[0]) + e(sims[1]);
        let expect1 = e(sims[2]) + e(sims[3]) + e(sims[4]);
        assert!((s.double_value(&[0, 0]) - expect0).abs() / expect0 < 1e-5);
        assert!((s.double_value(&[0, 1]) - expect1).abs() / expect1 < 1e-5);
        assert!(expect0 > expect1);
        // A temperature so small that exp(sim / t) overflows fp32 still votes: for the nearest
        // neighbour (class 0 for the first query, class 1 for the second).
        let r = evaluate(&bank, &labels, &q, &[0, 1], 2, 5, 1e-30);
        assert_eq!(r.top1, 100.0);
        assert!(scores(&q, &bank, &bl, 2, 5, 1e-30, None).isfinite().all().int64_value(&[]) == 1);
        // Euclidean majority with k = 3 on raw points: the query at (0.95, 0.05) has neighbours
        // 0, 1 (class 0) and 4 (class 1): class 0 wins 2 votes to 1.
        let bl = Tensor::from_slice(&[0i64, 0, 1, 1, 1]);
        let v = euclidean_votes(&q.narrow(0, 0, 1), &bank, &bl, 2, 3, None);
        assert!((v.double_value(&[0, 0]) - 2.0).abs() < 1e-3 && (v.double_value(&[0, 1]) - 1.0).abs() < 1e-3, "{v:?}");
        let r = evaluate_with(Metric::Euclidean, &bank, &labels, &q, &[0, 1], 2, 3, 0.0, false);
        assert_eq!(r.top1, 100.0);
        // A wrong label is counted wrong.
        let r = evaluate(&bank, &labels, &q, &[1, 1], 2, 2, 0.1);
        assert_eq!(r.top1, 50.0);
    }

    #[test]
    fn leave_one_out_never_votes_for_the_query_itself() {
        // Four points: two pairs, each pair's members close, labels crossed so that an image's
        // own entry is the only one of its label near it. With itself in the bank kNN (k 1)
        // is always right; left out, its neighbour (the other label) decides: always wrong.
        let x = Tensor::from_slice(&[1.0f64, 0.0, 0.99, 0.14, 0.0, 1.0, 0.14, 0.99]).view([4, 2]).to_kind(Kind::Float);
        let x = &x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        let labels = [0u32, 1, 0, 1];
        for metric in [Metric::Cosine, Metric::Euclidean] {
            let with_self = evaluate_with(metric, &x, &labels, &x, &labels, 2, 1, 0.1, false);
            let without = evaluate_with(metric, &x, &labels, &x, &labels, 2, 1, 0.1, true);
            assert_eq!((with_self.top1, without.top1), (100.0, 0.0), "{metric:?}");
            // k larger than the bank: the other three vote, never the query itself.
            let all = evaluate_with(metric, &x, &labels, &x, &labels, 2, 10, 0.1, true);
            assert_eq!(all.k, 3, "{metric:?}");
        }
        // In chunks (the loop's offset): the masked entry follows the query's index.
        let m = mask_self(&Tensor::zeros([2, 5], (Kind::Float, Device::Cpu)), 3, -1.0);
        let v: Vec<f32> = Vec::try_from(m.flatten(0, -1)).unwrap();
        assert_eq!(v, [0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]);
    }
}
