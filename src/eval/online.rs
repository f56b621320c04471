//! Online linear probe (as solo-learn does): a linear classifier trained alongside pretraining on
//! the detached backbone features of view 1 and the batch labels, reported every epoch on the
//! test split. It never sends gradient into the encoder.

use crate::train::optim::Optimizer;
use tch::{nn, nn::Module, Device, Tensor};

pub struct OnlineProbe {
    vs: nn::VarStore,
    fc: nn::Linear,
    opt: Optimizer,
}

impl OnlineProbe {
    pub fn new(dim: i64, classes: i64, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let fc = crate::model::head::torch_linear(&(vs.root() / "fc"), dim, classes);
        let opt = Optimizer::new(crate::model::named_trainable(&vs), 0.9, 0.0);
        OnlineProbe { vs, fc, opt }
    }

    /// One SGD step on detached features; returns the batch loss tensor (not read back).
    pub fn step(&mut self, feats: &Tensor, labels: &Tensor, lr: f64) -> Tensor {
        let loss = self.fc.forward(&feats.detach()).cross_entropy_for_logits(labels);
        self.opt.zero_grad();
        loss.backward();
        self.opt.step(lr);
        loss.detach()
    }

    pub fn logits(&self, feats: &Tensor) -> Tensor {
        tch::no_grad(|| self.fc.forward(feats))
    }

    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut s = crate::method::stores_state(&[("probe.", &self.vs)]);
        s.extend(self.opt.state().into_iter().map(|(n, t)| (format!("probe.{n}"), t)));
        s
    }

    /// Restores [`OnlineProbe::state`]; a checkpoint without a probe leaves it fresh.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> anyhow::Result<()> {
        if !state.iter().any(|(n, _)| n.starts_with("probe.fc.")) {
            return Ok(());
        }
        crate::method::load_stores(&[("probe.", &self.vs)], state)?;
        let opt: Vec<(String, Tensor)> = state.iter().filter_map(|(n, t)| n.strip_prefix("probe.").map(|n| (n.to_string(), t.shallow_clone()))).collect();
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
            let x = (Tensor::randn([32, 4], (Kind::Float, Device::Cpu)) * 0.3 + y.unsqueeze(1).to_kind(Kind::Float) * 2.0).mm(&w);
            p.step(&x, &y, 0.1);
        }
        assert!(!w.grad().defined(), "the probe must not backpropagate into the features");
        let y = Tensor::randint(2, [200], (Kind::Int64, Device::Cpu));
        let x = tch::no_grad(|| (Tensor::randn([200, 4], (Kind::Float, Device::Cpu)) * 0.3 + y.unsqueeze(1).to_kind(Kind::Float) * 2.0).mm(&w));
        let (top1, _) = crate::eval::linear::accuracy(&p.logits(&x), &y);
        assert!(top1 > 95.0, "{top1}");
    }
}
