//! SGD with momentum and weight decay (PyTorch's rule), and learning-rate schedules.
//!
//! Written here rather than taken from libtorch so its state (momentum buffers) is plain named
//! tensors that checkpoints save and restore exactly.

use tch::Tensor;

pub struct Sgd {
    params: Vec<(String, Tensor)>,
    bufs: Vec<Option<Tensor>>,
    pub momentum: f64,
    pub weight_decay: f64,
}

impl Sgd {
    pub fn new(params: Vec<(String, Tensor)>, momentum: f64, weight_decay: f64) -> Self {
        let bufs = params.iter().map(|_| None).collect();
        Sgd { params, bufs, momentum, weight_decay }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One step: d = g + wd * p; buf = momentum * buf + d (buf = d on the first step); p -= lr * buf.
    pub fn step(&mut self, lr: f64) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(self.bufs.iter_mut()) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let d = if self.weight_decay != 0.0 { g + &*p * self.weight_decay } else { g };
                let upd = match buf {
                    Some(b) => {
                        let _ = b.g_mul_scalar_(self.momentum);
                        let _ = b.g_add_(&d);
                        b.shallow_clone()
                    }
                    None => {
                        let b = d.detach().copy();
                        *buf = Some(b.shallow_clone());
                        b
                    }
                };
                let _ = p.g_add_(&(upd * -lr));
            }
        });
    }

    /// Momentum buffers as named tensors (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.bufs)
            .filter_map(|((n, _), b)| b.as_ref().map(|b| (format!("opt.{n}"), b.shallow_clone())))
            .collect()
    }

    pub fn load_state(&mut self, state: &[(String, Tensor)]) {
        let map: std::collections::HashMap<&str, &Tensor> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for ((n, p), b) in self.params.iter().zip(self.bufs.iter_mut()) {
            *b = map.get(format!("opt.{n}").as_str()).map(|t| t.to_device(p.device()).copy());
        }
    }
}

/// Learning rate for a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `lr * 0.5 * (1 + cos(pi * e / E))` for epoch e = 0..E-1, fixed within the epoch.
    CosineEpoch { lr: f64, epochs: usize },
    /// Linear warmup over `warmup` steps, then cosine to 0 at `total` steps.
    CosineStep { lr: f64, warmup: usize, total: usize },
}

impl Schedule {
    pub fn lr(&self, epoch: usize, step: usize) -> f64 {
        use std::f64::consts::PI;
        match *self {
            Schedule::CosineEpoch { lr, epochs } => lr * 0.5 * (1.0 + (PI * epoch as f64 / epochs as f64).cos()),
            Schedule::CosineStep { lr, warmup, total } => {
                if step < warmup {
                    lr * (step + 1) as f64 / warmup as f64
                } else {
                    let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                    lr * 0.5 * (1.0 + (PI * t.min(1.0)).cos())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn sgd_matches_pytorch_rule_by_hand() {
        // p = 1, loss = p^2 (g = 2p), lr 0.1, momentum 0.9, wd 0.5.
        // step 1: d = 2 + 0.5 = 2.5, buf = 2.5, p = 1 - 0.25 = 0.75
        // step 2: d = 1.5 + 0.375 = 1.875, buf = 2.25 + 1.875 = 4.125, p = 0.75 - 0.4125 = 0.3375
        let p = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let mut opt = Sgd::new(vec![("p".into(), p.shallow_clone())], 0.9, 0.5);
        for _ in 0..2 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Double).backward();
            opt.step(0.1);
        }
        assert!((p.double_value(&[0]) - 0.3375).abs() < 1e-12, "{}", p.double_value(&[0]));
        assert!((opt.state()[0].1.double_value(&[0]) - 4.125).abs() < 1e-12);
        let _ = Device::Cpu;
    }

    #[test]
    fn cosine_epoch_follows_protocol() {
        let s = Schedule::CosineEpoch { lr: 0.03, epochs: 10 };
        assert!((s.lr(0, 0) - 0.03).abs() < 1e-12);
        assert!((s.lr(5, 999) - 0.015).abs() < 1e-12);
        assert!(s.lr(9, 0) > 0.0 && s.lr(9, 0) < 0.001);
    }

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule::CosineStep { lr: 1.0, warmup: 10, total: 110 };
        assert!((s.lr(0, 0) - 0.1).abs() < 1e-12);
        assert!((s.lr(0, 9) - 1.0).abs() < 1e-12);
        assert!((s.lr(0, 60) - 0.5).abs() < 1e-12);
        assert!(s.lr(0, 110).abs() < 1e-12);
    }
}
