//! Online linear probe (as solo-learn does): a linear classifier trained alongside pretraining on
//! the detached backbone features of view 1 and the batch labels, reported every epoch on the
//! test split. It never sends gradient into the encoder.
//!
//! The features are standardized per dimension first by a batch norm without affine parameters
//! (as MAE's linear probe does): batch statistics while training, running statistics when scoring,
//! so the scored classifier is still one affine map of the features. Without it one fixed SGD
//! learning rate had to suit every method's feature scale, and the probe trailed kNN on the same
//! backbone by up to 29 points on the short fmnist budget (SimSiam + Un-Mix: 45.6 % vs 74.2 %).

use crate::optim::Optimizer;
use tch::{nn, nn::Module, Device, Tensor};

pub struct OnlineProbe {
    vs: nn::VarStore,
    running_mean: Tensor,
    running_var: Tensor,
    fc: nn::Linear,
    opt: Optimizer,
}

impl OnlineProbe {
    pub fn new(dim: i64, classes: i64, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let running_mean = (vs.root() / "norm").zeros_no_train("running_mean", &[dim]);
        let running_var = (vs.root() / "norm").ones_no_train("running_var", &[dim]);
        let fc = crate::model::head::torch_linear(&(vs.root() / "fc"), dim, classes);
        let opt = Optimizer::new(crate::model::named_trainable(&vs), 0.9, 0.0);
        OnlineProbe { vs, running_mean, running_var, fc, opt }
    }

    /// Standardized features: batch statistics (updating the running ones) when `train`.
    fn normalize(&self, feats: &Tensor, train: bool) -> Tensor {
        let train = train && feats.size()[0] > 1;
        feats.batch_norm(
            None::<&Tensor>,
            None::<&Tensor>,
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            0.1,
            1e-5,
            false,
        )
    }

    /// One SGD step on detached features; returns the batch loss tensor (not read back).
    pub fn step(&mut self, feats: &Tensor, labels: &Tensor, lr: f64) -> Tensor {
        let x = tch::no_grad(|| self.normalize(&feats.detach(), true));
        let loss = self.fc.forward(&x).cross_entropy_for_logits(labels);
        self.opt.zero_grad();
        loss.backward();
        self.opt.step(lr);
        loss.detach()
    }

    /// Whether every weight of the probe is finite (a too large lr makes it diverge).
    pub fn is_finite(&self) -> bool {
        crate::model::named_variables(&self.vs).iter().all(|(_, t)| bool::try_from(t.isfinite().all()).unwrap_or(false))
    }

    pub fn logits(&self, feats: &Tensor) -> Tensor {
        tch::no_grad(|| self.fc.forward(&self.normalize(feats, false)))
    }

    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut s = crate::method::stores_state(&[("probe.", &self.vs)]);
        s.extend(self.opt.state().into_iter().map(|(n, t)| (format!("probe.{n}"), t)));
        s
    }

    /// Restores [`OnlineProbe::state`]; a checkpoint without a probe, or with one from before the
    /// probe standardized its features (its classifier was fitted to raw features), leaves it fresh.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> anyhow::Result<()> {
        if !state.iter().any(|(n, _)| n == "probe.norm.running_mean") {
            return Ok(());
        }
        crate::method::load_stores(&[("probe.", &self.vs)], state)?;
        let opt: Vec<(String, Tensor)> = state
            .iter()
            .filter_map(|(n, t)| n.strip_prefix("probe.").map(|n| (n.to_string(), t.shallow_clone())))
            .collect();
        self.opt.load_state(&opt);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn learns_separable_features_and_never_touches_their_graph() {
        tch::manual_seed(0);
        let mut p = OnlineProbe::new(4, 2, Device::Cpu);
        let w = Tensor::randn([4, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        for _ in 0..200 {
            let y = Tensor::randint(2, [32], (Kind::Int64, Device::Cpu));
            let x = (Tensor::randn([32, 4], (Kind::Float, Device::Cpu)) * 0.3
                + y.unsqueeze(1).to_kind(Kind::Float) * 2.0)
                .mm(&w);
            let _ = p.step(&x, &y, 0.1);
        }
        assert!(!w.grad().defined(), "the probe must not backpropagate into the features");
        let y = Tensor::randint(2, [200], (Kind::Int64, Device::Cpu));
        let x = tch::no_grad(|| {
            (Tensor::randn([200, 4], (Kind::Float, Device::Cpu)) * 0.3 + y.unsqueeze(1).to_kind(Kind::Float) * 2.0)
                .mm(&w)
        });
        let (top1, _) = crate::eval::linear::accuracy(&p.logits(&x), &y);
        assert!(top1 > 95.0, "{top1}");
    }

    #[test]
    fn learns_whatever_the_scale_of_the_features() {
        // One informative dimension of unit scale next to three noise dimensions of scale 1000
        // (shifted by 500): at lr 0.1 a plain linear layer's steps are dominated by the noise
        // dimensions and it ends near chance; standardized, the probe finds the signal.
        let mut p = OnlineProbe::new(4, 2, Device::Cpu);
        let batch = |n: i64| {
            let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
            let signal = y.to_kind(Kind::Float) * 2.0 - 1.0 + Tensor::randn([n], (Kind::Float, Device::Cpu)) * 0.3;
            let noise = Tensor::randn([n, 3], (Kind::Float, Device::Cpu)) * 1000.0 + 500.0;
            (Tensor::cat(&[signal.unsqueeze(1), noise], 1), y)
        };
        for _ in 0..300 {
            let (x, y) = batch(32);
            let loss = p.step(&x, &y, 0.1).double_value(&[]);
            assert!(loss.is_finite(), "probe loss {loss}");
        }
        let (x, y) = batch(1000);
        let (top1, _) = crate::eval::linear::accuracy(&p.logits(&x), &y);
        assert!(top1 > 95.0, "{top1}");
        // The running statistics followed the features' scale.
        let m = p.running_mean.narrow(0, 1, 3).mean(Kind::Float).double_value(&[]);
        assert!((m - 500.0).abs() < 150.0, "running mean {m}");
    }

    #[test]
    fn a_checkpoint_from_before_standardization_leaves_the_probe_fresh() {
        let mut p = OnlineProbe::new(3, 2, Device::Cpu);
        let fresh = p.fc.ws.copy();
        let old = vec![
            ("probe.fc.weight".to_string(), Tensor::ones([2, 3], (Kind::Float, Device::Cpu))),
            ("probe.fc.bias".to_string(), Tensor::ones([2], (Kind::Float, Device::Cpu))),
        ];
        p.load_state(&old).unwrap();
        assert_eq!(p.fc.ws, fresh);
        let q = OnlineProbe::new(3, 2, Device::Cpu);
        let _ = q.running_mean.shallow_clone().fill_(7.0);
        p.load_state(&q.state()).unwrap();
        assert_eq!(p.running_mean, q.running_mean);
        assert_eq!(p.fc.ws, q.fc.ws);
    }
}
