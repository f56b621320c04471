//! Loss functions of the methods, as plain functions of tensors (testable with hand-made inputs).
//! Each computes in fp32 with autocast off, whatever precision produced its inputs (float64
//! inputs, the equivalence tests' precision, stay float64).

use crate::precision::Fp32Scope;
use tch::{Kind, Tensor};

/// `x` in the precision a loss computes in: fp32 for fp32, bf16 and fp16 inputs (autocast's
/// outputs), float64 for float64 inputs.
pub fn wide(x: &Tensor) -> Tensor {
    if x.kind() == Kind::Double {
        x.shallow_clone()
    } else {
        x.to_kind(Kind::Float)
    }
}

/// Row-wise L2 normalization, as `F.normalize(x, dim=1)`.
pub fn normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12)
}

/// InfoNCE of queries `q` (N, C) against positives `k` (N, C) and a queue (C, K), all
/// L2-normalized: cross-entropy with the positive at index 0 (MoCo).
pub fn info_nce(q: &Tensor, k: &Tensor, queue: &Tensor, t: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let log_p = positive_log_prob(q, k, queue, t);
    -log_p.mean(log_p.kind())
}

/// [`info_nce`] per query: the N cross-entropies before their mean.
pub fn info_nce_rows(q: &Tensor, k: &Tensor, queue: &Tensor, t: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    -positive_log_prob(q, k, queue, t)
}

/// Each query's log-probability of its positive among [positive, queue] (the mean is taken over
/// this strided column, so [`info_nce`] sums in the same order as ever).
fn positive_log_prob(q: &Tensor, k: &Tensor, queue: &Tensor, t: f64) -> Tensor {
    let q = &wide(q);
    let k = &wide(k);
    let queue = &wide(queue);
    let kind = q.kind();
    let pos = (q * k).sum_dim_intlist(1, true, kind);
    let neg = q.mm(queue);
    let logits = Tensor::cat(&[pos, neg], 1) / t;
    logits.log_softmax(1, kind).select(1, 0)
}

/// InfoNCE against in-batch keys (MoCo v3): queries `q` (N, C) against all keys `keys` (M, C),
/// the positive of query i at column `positives[i]`; cross-entropy averaged over the queries.
/// In the inputs' precision (float64 stays float64; tch's `cross_entropy_for_logits` would
/// compute in float32).
pub fn info_nce_in_batch(q: &Tensor, keys: &Tensor, positives: &Tensor, t: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let rows = info_nce_in_batch_rows(q, keys, positives, t);
    rows.mean(rows.kind())
}

/// [`info_nce_in_batch`] per query: the N cross-entropies before their mean.
pub fn info_nce_in_batch_rows(q: &Tensor, keys: &Tensor, positives: &Tensor, t: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let (q, keys) = (&wide(q), &wide(keys));
    let log_p = (q.mm(&keys.transpose(0, 1)) / t).log_softmax(1, q.kind());
    -log_p.gather(1, &positives.unsqueeze(1), false).squeeze_dim(1)
}

/// Similarities of queries `q` (M, C) to the keys of a batch `keys` (N, C), then to further
/// negatives `negatives` (C, K; a queue, or none): (M, N + K), in fp32 (float64 stays float64),
/// the input of a mixture's virtual-label term (i-Mix, MixCo).
pub fn batch_similarities(q: &Tensor, keys: &Tensor, negatives: Option<&Tensor>) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let (q, keys) = (wide(q), wide(keys));
    let sims = q.mm(&keys.transpose(0, 1));
    match negatives.filter(|t| t.size()[1] > 0) {
        Some(neg) => Tensor::cat(&[sims, q.mm(&wide(neg))], 1),
        None => sims,
    }
}

/// NT-Xent (SimCLR) over the 2N embeddings of a pair of batches `a`, `b` (N, C): for every one of
/// the 2N anchors, the positive is its partner in the other batch, the other 2N - 2 are negatives.
pub fn nt_xent(a: &Tensor, b: &Tensor, t: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let a = &wide(a);
    let b = &wide(b);
    let n = a.size()[0];
    let z = normalize(&Tensor::cat(&[a, b], 0));
    let sim = z.mm(&z.transpose(0, 1)) / t;
    // Mask self-similarity out of the softmax.
    let eye = Tensor::eye(2 * n, (Kind::Bool, z.device()));
    let sim = sim.masked_fill(&eye, f64::NEG_INFINITY);
    let idx = Tensor::arange(2 * n, (Kind::Int64, z.device()));
    let partner = (&idx + n).remainder(2 * n);
    sim.cross_entropy_for_logits(&partner)
}

/// BYOL's regression loss: 2 - 2 cos(p, z), averaged over the batch (`z` is the detached target).
pub fn normalized_mse(p: &Tensor, z: &Tensor) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let p = &wide(p);
    let z = &wide(z);
    let kind = p.kind();
    let c = (normalize(p) * normalize(z)).sum_dim_intlist(1, false, kind);
    (c * -2.0 + 2.0).mean(kind)
}

/// SimSiam's negative cosine similarity, averaged over the batch.
pub fn negative_cosine(p: &Tensor, z: &Tensor) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let p = &wide(p);
    let z = &wide(z);
    let kind = p.kind();
    -(normalize(p) * normalize(z)).sum_dim_intlist(1, false, kind).mean(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: &[f32], r: i64, c: i64) -> Tensor {
        Tensor::from_slice(v).view([r, c])
    }

    #[test]
    fn nt_xent_on_two_orthogonal_pairs() {
        // a = [e1, e2], b = [e1, e2]: each anchor has similarity 1 with its positive and
        // 0 with the two negatives (the other pair, in both batches): loss = -log(e^{1/t} / (e^{1/t} + 2)).
        let a = t2(&[1., 0., 0., 1.], 2, 2);
        let t = 0.5;
        let l = nt_xent(&a, &a, t).double_value(&[]);
        let e = (1.0f64 / t).exp();
        let expect = -(e / (e + 2.0)).ln();
        assert!((l - expect).abs() < 1e-5, "{l} vs {expect}");
    }

    #[test]
    fn nt_xent_is_symmetric_in_its_batches() {
        let a = Tensor::randn([6, 4], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::randn([6, 4], (Kind::Float, tch::Device::Cpu));
        let d = nt_xent(&a, &b, 0.2) - nt_xent(&b, &a, 0.2);
        assert!(d.abs().double_value(&[]) < 1e-5);
    }

    #[test]
    fn byol_loss_zero_for_identical_directions_and_four_for_opposite() {
        let p = t2(&[1., 2., -3., 0.5], 2, 2);
        assert!(normalized_mse(&p, &(&p * 3.0)).double_value(&[]).abs() < 1e-6);
        assert!((normalized_mse(&p, &(-&p)).double_value(&[]) - 4.0).abs() < 1e-6);
        // Orthogonal: 2.
        let q = t2(&[1., 0.], 1, 2);
        let z = t2(&[0., 5.], 1, 2);
        assert!((normalized_mse(&q, &z).double_value(&[]) - 2.0).abs() < 1e-6);
        assert!((negative_cosine(&q, &q).double_value(&[]) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn info_nce_matches_hand_computed_value() {
        // q = k = e1, queue = [e2, -e1]: logits (1, 0, -1)/0.5 = (2, 0, -2);
        // loss = -log(e^2 / (e^2 + 1 + e^-2)).
        let q = t2(&[1.0, 0.0], 1, 2);
        let queue = t2(&[0.0, -1.0, 1.0, 0.0], 2, 2);
        let l = info_nce(&q, &q, &queue, 0.5).double_value(&[]);
        let e = std::f64::consts::E;
        let expect = -(e.powi(2) / (e.powi(2) + 1.0 + e.powi(-2))).ln();
        assert!((l - expect).abs() < 1e-5, "{l} vs {expect}");
    }
}

/// Barlow Twins (Zbontar et al. 2021): standardize each embedding dimension over the batch,
/// cross-correlation C = z1^T z2 / N, loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2.
pub fn barlow_twins(z1: &Tensor, z2: &Tensor, lambda: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let z1 = &wide(z1);
    let z2 = &wide(z2);
    let kind = z1.kind();
    let n = z1.size()[0] as f64;
    let std = |z: &Tensor| {
        let m = z.mean_dim(0, true, kind);
        let s = z.std_dim(0, false, true) + 1e-5;
        (z - m) / s
    };
    let c = std(z1).transpose(0, 1).mm(&std(z2)) / n;
    let diag = c.diagonal(0, 0, 1);
    let on = (diag.ones_like() - &diag).square().sum(kind);
    let off = c.square().sum(kind) - diag.square().sum(kind);
    on + off * lambda
}

/// VICReg (Bardes et al. 2022): invariance (MSE) + variance (hinge on each dimension's std at 1)
/// + covariance (off-diagonal squares / D), weighted 25 / 25 / 1 by default.
pub fn vicreg(z1: &Tensor, z2: &Tensor, sim_w: f64, var_w: f64, cov_w: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let z1 = &wide(z1);
    let z2 = &wide(z2);
    let kind = z1.kind();
    let (n, d) = (z1.size()[0] as f64, z1.size()[1] as f64);
    let inv = (z1 - z2).square().mean(kind);
    let var = |z: &Tensor| ((z.var_dim(0, true, false) + 1e-4).sqrt().neg() + 1.0).relu().mean(kind);
    let cov = |z: &Tensor| {
        let zc = z - z.mean_dim(0, true, kind);
        let c = zc.transpose(0, 1).mm(&zc) / (n - 1.0);
        let diag = c.diagonal(0, 0, 1);
        (c.square().sum(kind) - diag.square().sum(kind)) / d
    };
    inv * sim_w + (var(z1) + var(z2)) * var_w + (cov(z1) + cov(z2)) * cov_w
}

/// W-MSE's whitening (Ermolov et al. 2021): centres the rows of `x` (n, d) and maps them by the
/// inverse Cholesky factor of their covariance (shrunk towards I by `eps`), so the output's
/// covariance is the identity. Needs n > d; differentiable.
pub fn whiten(x: &Tensor, eps: f64) -> Tensor {
    let _fp32 = Fp32Scope::new();
    let x = &wide(x);
    let kind = x.kind();
    let (n, d) = (x.size()[0], x.size()[1]);
    let xc = x - x.mean_dim(0, true, kind);
    let eye = Tensor::eye(d, (kind, x.device()));
    let cov = xc.transpose(0, 1).mm(&xc) / (n - 1) as f64;
    let cov = cov * (1.0 - eps) + eye.shallow_clone() * eps;
    // A failed factorization (a singular covariance) gives NaN, which the training loop reports.
    let (l, _info) = cov.linalg_cholesky_ex(false, false);
    let w = l.linalg_solve_triangular(&eye, false, true, false);
    xc.mm(&w.transpose(0, 1))
}

/// W-MSE's whitened embeddings of a batch: each group of rows `groups[g]` (index tensors of
/// `w_size` rows) whitened on its own statistics.
pub fn whiten_groups(x: &Tensor, groups: &[Tensor], eps: f64) -> Tensor {
    // The output in whiten's precision, whatever precision produced `x`.
    let mut out = Tensor::zeros(x.size(), (wide(x).kind(), x.device()));
    for idx in groups {
        out = out.index_put(&[Some(idx.shallow_clone())], &whiten(&x.index_select(0, idx), eps), false);
    }
    out
}

#[cfg(test)]
mod more_tests {
    use super::*;
    use tch::Device;

    #[test]
    fn barlow_twins_is_zero_for_decorrelated_identical_views() {
        // Two standardized, uncorrelated columns (+-1 patterns), identical views: C = I, loss 0.
        let z = Tensor::from_slice(&[1.0f32, 1., 1., -1., -1., 1., -1., -1.]).view([4, 2]);
        let l = barlow_twins(&z, &z, 0.005).double_value(&[]);
        assert!(l.abs() < 1e-3, "{l}");
        // Opposite views: C = -I: on-diagonal (1 - -1)^2 = 4 per dimension.
        let l = barlow_twins(&z, &(-&z), 0.005).double_value(&[]);
        assert!((l - 8.0).abs() < 1e-2, "{l}");
    }

    #[test]
    fn vicreg_terms_by_hand() {
        // Identical views with per-dimension std >= 1 and no covariance: loss 0.
        let z = Tensor::from_slice(&[2.0f32, 2., 2., -2., -2., 2., -2., -2.]).view([4, 2]);
        assert!(vicreg(&z, &z, 25.0, 25.0, 1.0).double_value(&[]).abs() < 1e-4);
        // Collapsed views (all zeros): variance hinge = 1 - sqrt(1e-4) = 0.99 per view.
        let zero = Tensor::zeros([4, 2], (Kind::Float, Device::Cpu));
        let l = vicreg(&zero, &zero, 25.0, 25.0, 1.0).double_value(&[]);
        assert!((l - 25.0 * 2.0 * 0.99).abs() < 1e-3, "{l}");
    }

    #[test]
    fn whitening_gives_identity_covariance() {
        // Correlated data: x = g A with a mixing A.
        let g = Tensor::randn([200, 4], (Kind::Float, Device::Cpu));
        let a =
            Tensor::from_slice(&[1.0f32, 0.9, 0.0, 0.2, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0, 3.0, 0.1, 0.0, 0.0, 0.0, 0.5])
                .view([4, 4]);
        let x = g.mm(&a) + 5.0;
        let w = whiten(&x, 0.0);
        let cov = w.transpose(0, 1).mm(&w) / 199.0;
        let eye = Tensor::eye(4, (Kind::Float, Device::Cpu));
        assert!((cov - eye).abs().max().double_value(&[]) < 1e-3);
        assert!(w.mean_dim(0, false, Kind::Float).abs().max().double_value(&[]) < 1e-4);
        // Groups are whitened separately: each group's rows have identity covariance.
        let groups = [
            Tensor::arange_start(0, 100, (Kind::Int64, Device::Cpu)),
            Tensor::arange_start(100, 200, (Kind::Int64, Device::Cpu)),
        ];
        let wg = whiten_groups(&x, &groups, 0.0);
        for idx in &groups {
            let part = wg.index_select(0, idx);
            let cov = part.transpose(0, 1).mm(&part) / 99.0;
            assert!((cov - Tensor::eye(4, (Kind::Float, Device::Cpu))).abs().max().double_value(&[]) < 1e-3);
        }
        // Gradients flow through the whitening.
        let x = x.set_requires_grad(true);
        whiten(&x, 0.0).narrow(1, 0, 1).square().sum(Kind::Float).backward();
        assert!(x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}
