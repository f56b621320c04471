//! Loss functions of the methods, as plain functions of tensors (testable with hand-made inputs).

use tch::{Kind, Tensor};

/// Row-wise L2 normalization, as `F.normalize(x, dim=1)`.
pub fn normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1i64].as_slice(), true).clamp_min(1e-12)
}

/// InfoNCE of queries `q` (N, C) against positives `k` (N, C) and a queue (C, K), all
/// L2-normalized: cross-entropy with the positive at index 0 (MoCo).
pub fn info_nce(q: &Tensor, k: &Tensor, queue: &Tensor, t: f64) -> Tensor {
    let pos = (q * k).sum_dim_intlist(1, true, Kind::Float);
    let neg = q.mm(queue);
    let logits = Tensor::cat(&[pos, neg], 1) / t;
    -logits.log_softmax(1, Kind::Float).select(1, 0).mean(Kind::Float)
}

/// NT-Xent (SimCLR) over the 2N embeddings of a pair of batches `a`, `b` (N, C): for every one of
/// the 2N anchors, the positive is its partner in the other batch, the other 2N - 2 are negatives.
pub fn nt_xent(a: &Tensor, b: &Tensor, t: f64) -> Tensor {
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
    let c = (normalize(p) * normalize(z)).sum_dim_intlist(1, false, Kind::Float);
    (c * -2.0 + 2.0).mean(Kind::Float)
}

/// SimSiam's negative cosine similarity, averaged over the batch.
pub fn negative_cosine(p: &Tensor, z: &Tensor) -> Tensor {
    -(normalize(p) * normalize(z)).sum_dim_intlist(1, false, Kind::Float).mean(Kind::Float)
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
