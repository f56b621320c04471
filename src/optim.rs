//! Optimizers (SGD, LARS, Adam, AdamW) and learning-rate schedules, for pretraining and for the
//! linear evaluations alike.

use serde::{Deserialize, Serialize};
use tch::Tensor;

/// `train.optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Sgd,
    Lars,
    Adam,
    Adamw,
}

/// `train.lars_scope`: which variables LARS adapts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LarsScope {
    /// Weights only: biases and norm parameters (1-D tensors) get plain SGD without decay.
    #[default]
    Weights,
    /// Every parameter, as the SwAV authors' LARC.
    All,
}

/// `train.schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// `lr * 0.5 * (1 + cos(pi e / E))`, fixed within epoch e = 0..E-1.
    CosineEpoch,
    /// The same for e = 1..E, as the authors' CIFAR loop numbers its epochs.
    CosineEpochToZero,
    /// Per step, after `warmup_epochs` of linear warmup, to `min_lr`.
    CosineStep,
}

/// `train.warmup_shape`: how the lr rises over the warmup steps of "cosine-step".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarmupShape {
    /// Step i of W trains at lr (i + 1) / W: the first step already moves, the last reaches lr
    /// (the W-MSE authors' SimCLR/BYOL loop).
    #[default]
    Ramp,
    /// `np.linspace(warmup_start_lr, lr, W)`: the first step trains at `warmup_start_lr` (0 in the
    /// SwAV authors' CIFAR scripts), the last at lr, then the cosine starts at lr again.
    Linspace,
}

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// PyTorch SGD: d = g + wd p; buf = m buf + d (buf = d at first); p -= lr buf.
    Sgd,
    /// LARS in the form of apex's LARC (which the SwAV authors wrap around SGD) and solo-learn's
    /// LARS: d = (g + wd p) x eta ||p|| / (||g|| + wd ||p|| + 1e-8), then SGD momentum; where
    /// ||p|| or ||g|| is 0 the gradient passes unchanged (no decay either: the wrapped SGD's decay
    /// is off). `clip` (LARC's clip mode): the layer's rate is min(trust ratio, lr) rather than
    /// trust ratio x lr. `exclude_1d`: biases and norm parameters (1-D tensors) get plain SGD
    /// without weight decay (solo-learn's `exclude_bias_n_norm`); without it every parameter is
    /// adapted and decayed, as the SwAV scripts' LARC.
    Lars { eta: f64, clip: bool, exclude_1d: bool },
    /// Adam with L2 weight decay added to the gradient.
    Adam { beta1: f64, beta2: f64, eps: f64 },
    /// AdamW: decoupled weight decay p *= 1 - lr wd.
    AdamW { beta1: f64, beta2: f64, eps: f64 },
}

/// A parameter group: the variables whose names start with `prefix` get their own learning rate
/// (fixed, e.g. SimSiam's predictor, or a multiple of the scheduled one) and weight decay.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    pub prefix: String,
    /// A fixed learning rate that ignores the schedule.
    pub lr: Option<f64>,
    /// Otherwise the scheduled learning rate times this.
    pub lr_scale: f64,
    /// The group's weight decay (the optimizer's when absent).
    pub weight_decay: Option<f64>,
}

/// How one variable is updated: a fixed lr or a multiple of the scheduled one, and its decay.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Setting {
    fixed_lr: Option<f64>,
    lr_scale: f64,
    weight_decay: f64,
}

/// The optimizer. Written here rather than taken from libtorch so its state (momentum and moment
/// buffers, step count) is plain named tensors that checkpoints save and restore exactly.
pub struct Optimizer {
    params: Vec<(String, Tensor)>,
    settings: Vec<Setting>,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
    steps: i64,
    pub rule: Rule,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// Kept for the common case and for tests.
pub type Sgd = Optimizer;

/// The epsilon in LARC's trust-ratio denominator (apex's default, also solo-learn's).
const LARC_EPS: f64 = 1e-8;

fn is_bias_or_norm(p: &Tensor) -> bool {
    p.dim() <= 1
}

impl Optimizer {
    pub fn new(params: Vec<(String, Tensor)>, momentum: f64, weight_decay: f64) -> Self {
        Optimizer::with_rule(params, Rule::Sgd, momentum, weight_decay)
    }

    pub fn with_rule(params: Vec<(String, Tensor)>, rule: Rule, momentum: f64, weight_decay: f64) -> Self {
        let n = params.len();
        let settings = vec![Setting { fixed_lr: None, lr_scale: 1.0, weight_decay }; n];
        Optimizer {
            params,
            settings,
            m: (0..n).map(|_| None).collect(),
            v: (0..n).map(|_| None).collect(),
            steps: 0,
            rule,
            momentum,
            weight_decay,
        }
    }

    /// Applies parameter groups (the first group whose prefix matches a variable's name wins).
    /// Returns, per group, how many variables it took, so callers can reject a prefix that
    /// matches nothing.
    pub fn set_groups(&mut self, groups: &[ParamGroup]) -> Vec<usize> {
        let mut counts = vec![0; groups.len()];
        for ((name, _), s) in self.params.iter().zip(self.settings.iter_mut()) {
            *s = Setting { fixed_lr: None, lr_scale: 1.0, weight_decay: self.weight_decay };
            if let Some(g) = groups.iter().position(|g| name.starts_with(&g.prefix)) {
                counts[g] += 1;
                let g = &groups[g];
                *s = Setting {
                    fixed_lr: g.lr,
                    lr_scale: g.lr_scale,
                    weight_decay: g.weight_decay.unwrap_or(self.weight_decay),
                };
            }
        }
        counts
    }

    /// The variables this optimizer updates (shallow copies).
    pub fn params(&self) -> Vec<Tensor> {
        self.params.iter().map(|(_, p)| p.shallow_clone()).collect()
    }

    /// Names of the variables this optimizer updates.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(n, _)| n.as_str())
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    fn momentum_step(buf: &mut Option<Tensor>, d: Tensor, momentum: f64) -> Tensor {
        match buf {
            Some(b) => {
                let _ = b.g_mul_scalar_(momentum);
                let _ = b.g_add_(&d);
                b.shallow_clone()
            }
            None => {
                let b = d.detach().copy();
                *buf = Some(b.shallow_clone());
                b
            }
        }
    }

    pub fn step(&mut self, lr: f64) {
        self.step_except(lr, |_| false)
    }

    /// A step that leaves the variables for which `frozen(name)` holds untouched (as PyTorch does
    /// for a parameter whose gradient is None).
    pub fn step_except(&mut self, lr: f64, frozen: impl Fn(&str) -> bool) {
        self.steps += 1;
        let t = self.steps as f64;
        let (momentum, rule) = (self.momentum, self.rule);
        let scheduled = lr;
        tch::no_grad(|| {
            for (i, (name, p)) in self.params.iter_mut().enumerate() {
                let g = p.grad();
                if !g.defined() || frozen(name) {
                    continue;
                }
                let s = self.settings[i];
                let lr = s.fixed_lr.unwrap_or(scheduled * s.lr_scale);
                let wd = s.weight_decay;
                match rule {
                    Rule::Sgd => {
                        let d = if wd != 0.0 { g + &*p * wd } else { g };
                        let upd = Self::momentum_step(&mut self.m[i], d, momentum);
                        let _ = p.g_add_(&(upd * -lr));
                    }
                    Rule::Lars { eta, clip, exclude_1d } => {
                        let d = if exclude_1d && is_bias_or_norm(p) {
                            g
                        } else {
                            // The trust ratio stays on the device: no host round-trip per variable.
                            let (pn, gn) = (p.norm(), g.norm());
                            let ratio = &pn * eta / (&gn + &pn * wd + LARC_EPS);
                            // Clipped: lr x min(ratio / lr, 1) = min(ratio, lr) as the layer's rate.
                            let trust = if clip && lr > 0.0 { (&ratio / lr).clamp_max(1.0) } else { ratio };
                            let adapted = if wd != 0.0 { &g + &*p * wd } else { g.shallow_clone() } * trust;
                            let ok = pn.gt(0.0).logical_and(&gn.gt(0.0));
                            adapted.where_self(&ok, &g)
                        };
                        let upd = Self::momentum_step(&mut self.m[i], d, momentum);
                        let _ = p.g_add_(&(upd * -lr));
                    }
                    Rule::Adam { beta1, beta2, eps } | Rule::AdamW { beta1, beta2, eps } => {
                        let decoupled = matches!(rule, Rule::AdamW { .. });
                        let g = if wd != 0.0 && !decoupled { g + &*p * wd } else { g };
                        if decoupled && wd != 0.0 {
                            let _ = p.g_mul_scalar_(1.0 - lr * wd);
                        }
                        let m = self.m[i].get_or_insert_with(|| p.zeros_like());
                        let _ = m.g_mul_scalar_(beta1);
                        let _ = m.g_add_(&(&g * (1.0 - beta1)));
                        let v = self.v[i].get_or_insert_with(|| p.zeros_like());
                        let _ = v.g_mul_scalar_(beta2);
                        let _ = v.g_add_(&(&g * &g * (1.0 - beta2)));
                        let mhat = &*m / (1.0 - beta1.powf(t));
                        let vhat = &*v / (1.0 - beta2.powf(t));
                        let _ = p.g_add_(&(mhat / (vhat.sqrt() + eps) * -lr));
                    }
                }
            }
        });
    }

    /// Buffers and step count as named tensors (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut s: Vec<(String, Tensor)> = Vec::new();
        for ((n, _), (m, v)) in self.params.iter().zip(self.m.iter().zip(&self.v)) {
            if let Some(m) = m {
                s.push((format!("opt.{n}"), m.shallow_clone()));
            }
            if let Some(v) = v {
                s.push((format!("opt2.{n}"), v.shallow_clone()));
            }
        }
        s.push(("opt.__steps".into(), Tensor::from_slice(&[self.steps])));
        s
    }

    pub fn load_state(&mut self, state: &[(String, Tensor)]) {
        let map: std::collections::HashMap<&str, &Tensor> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for (i, (n, p)) in self.params.iter().enumerate() {
            self.m[i] = map.get(format!("opt.{n}").as_str()).map(|t| t.to_device(p.device()).copy());
            self.v[i] = map.get(format!("opt2.{n}").as_str()).map(|t| t.to_device(p.device()).copy());
        }
        self.steps = map.get("opt.__steps").map(|t| t.int64_value(&[0])).unwrap_or(0);
    }
}

/// Learning rate for a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `lr * 0.5 * (1 + cos(pi * e / E))`, fixed within an epoch, for e = 0..E-1 (the fmnist
    /// protocol); with `to_zero`, for e = 1..E as the authors' CIFAR loop numbers its epochs, so the
    /// last epoch trains at lr 0.
    /// `epochs` is E, or the run's steps over the steps per epoch when it ends inside an epoch.
    CosineEpoch { lr: f64, epochs: f64, to_zero: bool },
    /// Linear warmup over `warmup` steps in the given shape (from `start_lr` for `Linspace`), then
    /// cosine from `lr` to `min_lr` at `total` steps.
    CosineStep { lr: f64, min_lr: f64, warmup: usize, total: usize, shape: WarmupShape, start_lr: f64 },
}

impl Schedule {
    pub fn lr(&self, epoch: usize, step: usize) -> f64 {
        use std::f64::consts::PI;
        match *self {
            Schedule::CosineEpoch { lr, epochs, to_zero } => {
                let e = epoch + usize::from(to_zero);
                lr * 0.5 * (1.0 + (PI * e as f64 / epochs).cos())
            }
            Schedule::CosineStep { lr, min_lr, warmup, total, shape, start_lr } => {
                if step < warmup {
                    match shape {
                        WarmupShape::Ramp => lr * (step + 1) as f64 / warmup as f64,
                        // linspace(start, lr, 1) is [start].
                        WarmupShape::Linspace if warmup == 1 => start_lr,
                        WarmupShape::Linspace => start_lr + (lr - start_lr) * step as f64 / (warmup - 1) as f64,
                    }
                } else {
                    let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                    min_lr + (lr - min_lr) * 0.5 * (1.0 + (PI * t.min(1.0)).cos())
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
    fn adam_first_step_moves_by_lr_times_sign() {
        // Bias-corrected first Adam step is lr * g / (|g| + eps) = lr * sign(g).
        let p = Tensor::from_slice(&[1.0f64, -2.0]).set_requires_grad(true);
        let mut opt = Optimizer::with_rule(
            vec![("p".into(), p.shallow_clone())],
            Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            0.0,
            0.0,
        );
        opt.zero_grad();
        (&p * &p).sum(Kind::Double).backward();
        opt.step(0.1);
        assert!((p.double_value(&[0]) - 0.9).abs() < 1e-6);
        assert!((p.double_value(&[1]) + 1.9).abs() < 1e-6);
    }

    #[test]
    fn lars_scales_weights_by_trust_ratio_and_leaves_biases_alone() {
        // Weight w = [[3, 4]] (norm 5), loss = sum(w) -> g = [[1, 1]] (norm sqrt 2), wd 0.5:
        // LARC's ratio eta ||w|| / (||g|| + wd ||w|| + eps) = 0.001 * 5 / (sqrt 2 + 2.5 + 1e-8),
        // applied to d = g + wd w = [2.5, 3].
        let w = Tensor::from_slice(&[3.0f64, 4.0]).view([1, 2]).set_requires_grad(true);
        let b = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let rule = Rule::Lars { eta: 0.001, clip: false, exclude_1d: true };
        let mut opt = Optimizer::with_rule(
            vec![("w".into(), w.shallow_clone()), ("b".into(), b.shallow_clone())],
            rule,
            0.9,
            0.5,
        );
        opt.zero_grad();
        (w.sum(Kind::Double) + b.sum(Kind::Double)).backward();
        opt.step(1.0);
        let trust = 0.001 * 5.0 / (2f64.sqrt() + 2.5 + 1e-8);
        assert!((w.double_value(&[0, 0]) - (3.0 - trust * 2.5)).abs() < 1e-15);
        assert!((w.double_value(&[0, 1]) - (4.0 - trust * 3.0)).abs() < 1e-15);
        // Bias (excluded): plain step, no decay: 1 - 1 * 1 = 0.
        assert!(b.double_value(&[0]).abs() < 1e-15);
    }

    #[test]
    fn larc_over_all_parameters_adapts_and_decays_biases_and_norm_weights() {
        // The SwAV scripts' LARC (trust 0.001, clip off) over every parameter, one step at lr 0.6,
        // momentum 0.9 (the first step's buffer is d itself), wd 0.5 (visible in float64):
        // - a batch-norm weight gamma = [1, 2] with g = [1, 3]:
        //   ratio = 0.001 sqrt 5 / (sqrt 10 + 0.5 sqrt 5 + 1e-8), gamma -= 0.6 ratio (g + 0.5 gamma);
        // - a bias b = [0.5, -0.5] with g = [2, 1]:
        //   ratio = 0.001 sqrt 0.5 / (sqrt 5 + 0.5 sqrt 0.5 + 1e-8), b -= 0.6 ratio (g + 0.5 b);
        // - a zero bias beta (norm 0) with g = [4, -1]: LARC leaves its gradient alone and the
        //   wrapped SGD's decay is off: beta -= 0.6 g.
        let step = |exclude_1d: bool| {
            let gamma = Tensor::from_slice(&[1.0f64, 2.0]).set_requires_grad(true);
            let b = Tensor::from_slice(&[0.5f64, -0.5]).set_requires_grad(true);
            let beta = Tensor::from_slice(&[0.0f64, 0.0]).set_requires_grad(true);
            let params = vec![
                ("bn.weight".into(), gamma.shallow_clone()),
                ("fc.bias".into(), b.shallow_clone()),
                ("bn.bias".into(), beta.shallow_clone()),
            ];
            let mut opt = Optimizer::with_rule(params, Rule::Lars { eta: 0.001, clip: false, exclude_1d }, 0.9, 0.5);
            opt.zero_grad();
            let c = |v: [f64; 2]| Tensor::from_slice(&v);
            ((&gamma * c([1.0, 3.0])).sum(Kind::Double)
                + (&b * c([2.0, 1.0])).sum(Kind::Double)
                + (&beta * c([4.0, -1.0])).sum(Kind::Double))
            .backward();
            opt.step(0.6);
            let v = |t: &Tensor| [t.double_value(&[0]), t.double_value(&[1])];
            (v(&gamma), v(&b), v(&beta))
        };
        let (gamma, b, beta) = step(false);
        let (s5, s10, sh) = (5f64.sqrt(), 10f64.sqrt(), 0.5f64.sqrt());
        let r = 0.001 * s5 / (s10 + 0.5 * s5 + 1e-8);
        let expect_gamma = [1.0 - 0.6 * r * (1.0 + 0.5), 2.0 - 0.6 * r * (3.0 + 1.0)];
        let r = 0.001 * sh / (s5 + 0.5 * sh + 1e-8);
        let expect_b = [0.5 - 0.6 * r * (2.0 + 0.25), -0.5 - 0.6 * r * (1.0 - 0.25)];
        for (got, want) in gamma.iter().chain(&b).zip(expect_gamma.iter().chain(&expect_b)) {
            assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        }
        assert_eq!(beta, [-0.6 * 4.0, 0.6]);
        // Excluding the 1-D tensors instead: plain SGD, no decay, for all three.
        let (gamma, b, beta) = step(true);
        assert_eq!(gamma, [1.0 - 0.6, 2.0 - 0.6 * 3.0]);
        assert_eq!(b, [0.5 - 0.6 * 2.0, -0.5 - 0.6]);
        assert_eq!(beta, [-0.6 * 4.0, 0.6]);
    }

    #[test]
    fn clipped_lars_steps_by_the_smaller_of_trust_ratio_and_lr() {
        // As above, w = [[3, 4]], wd 0.5: d = [2.5, 3], ratio = eta * 5 / (sqrt 2 + 2.5 + 1e-8); lr 0.1.
        let run = |eta: f64| {
            let w = Tensor::from_slice(&[3.0f64, 4.0]).view([1, 2]).set_requires_grad(true);
            let mut opt = Optimizer::with_rule(
                vec![("w".into(), w.shallow_clone())],
                Rule::Lars { eta, clip: true, exclude_1d: true },
                0.9,
                0.5,
            );
            opt.zero_grad();
            w.sum(Kind::Double).backward();
            opt.step(0.1);
            3.0 - w.double_value(&[0, 0])
        };
        // eta 1: ratio 1.28 > lr, so the layer steps at lr: 0.1 * 2.5.
        assert!((run(1.0) - 0.1 * 2.5).abs() < 1e-12, "{}", run(1.0));
        // eta 0.001: ratio 0.00128 < lr, so the layer steps at the ratio itself (unclipped: lr x ratio).
        let ratio = 0.001 * 5.0 / (2f64.sqrt() + 2.5 + 1e-8);
        assert!((run(0.001) - ratio * 2.5).abs() < 1e-15, "{}", run(0.001));
    }

    #[test]
    fn groups_fix_or_scale_the_lr_and_set_their_decay() {
        // loss = sum(a) + sum(b) + sum(c): g = 1 everywhere; plain SGD, no momentum.
        let a = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let b = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let c = Tensor::from_slice(&[1.0f64]).set_requires_grad(true);
        let params = vec![
            ("backbone.w".into(), a.shallow_clone()),
            ("predictor.fc1.weight".into(), b.shallow_clone()),
            ("head.fc.weight".into(), c.shallow_clone()),
        ];
        let mut opt = Optimizer::new(params, 0.0, 0.5);
        let counts = opt.set_groups(&[
            ParamGroup { prefix: "predictor.".into(), lr: Some(0.05), lr_scale: 1.0, weight_decay: Some(0.0) },
            ParamGroup { prefix: "head.".into(), lr: None, lr_scale: 2.0, weight_decay: None },
            ParamGroup { prefix: "nothing.".into(), lr: None, lr_scale: 1.0, weight_decay: None },
        ]);
        assert_eq!(counts, vec![1, 1, 0]);
        opt.zero_grad();
        (a.sum(Kind::Double) + b.sum(Kind::Double) + c.sum(Kind::Double)).backward();
        opt.step(0.1);
        // a: lr 0.1, d = 1 + 0.5 -> 1 - 0.15; b: fixed 0.05, no decay -> 0.95; c: lr 0.2 -> 1 - 0.3.
        assert!((a.double_value(&[0]) - 0.85).abs() < 1e-12);
        assert!((b.double_value(&[0]) - 0.95).abs() < 1e-12);
        assert!((c.double_value(&[0]) - 0.7).abs() < 1e-12);
    }

    #[test]
    fn adamw_decays_decoupled() {
        // Zero gradient: Adam moves nothing (m = 0); AdamW still shrinks p by (1 - lr wd).
        let p = Tensor::from_slice(&[2.0f64]).set_requires_grad(true);
        let mut opt = Optimizer::with_rule(
            vec![("p".into(), p.shallow_clone())],
            Rule::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 },
            0.0,
            0.1,
        );
        opt.zero_grad();
        (&p * 0.0).sum(Kind::Double).backward();
        opt.step(0.5);
        assert!((p.double_value(&[0]) - 2.0 * 0.95).abs() < 1e-9);
    }

    #[test]
    fn cosine_epoch_follows_protocol() {
        let s = Schedule::CosineEpoch { lr: 0.03, epochs: 10.0, to_zero: false };
        assert!((s.lr(0, 0) - 0.03).abs() < 1e-12);
        assert!((s.lr(5, 999) - 0.015).abs() < 1e-12);
        assert!(s.lr(9, 0) > 0.0 && s.lr(9, 0) < 0.001);
        // The authors' numbering (epochs 1..E): one epoch later on the curve, 0 in the last one.
        let s = Schedule::CosineEpoch { lr: 0.03, epochs: 10.0, to_zero: true };
        assert!((s.lr(0, 0) - 0.03 * 0.5 * (1.0 + (std::f64::consts::PI / 10.0).cos())).abs() < 1e-12);
        assert!((s.lr(4, 7) - 0.015).abs() < 1e-12);
        assert!(s.lr(9, 0).abs() < 1e-12);
    }

    #[test]
    fn warmup_then_cosine() {
        let ramp = WarmupShape::Ramp;
        let s = Schedule::CosineStep { lr: 1.0, min_lr: 0.0, warmup: 10, total: 110, shape: ramp, start_lr: 0.0 };
        assert!((s.lr(0, 0) - 0.1).abs() < 1e-12);
        assert!((s.lr(0, 9) - 1.0).abs() < 1e-12);
        assert!((s.lr(0, 60) - 0.5).abs() < 1e-12);
        assert!(s.lr(0, 110).abs() < 1e-12);
        let s = Schedule::CosineStep { lr: 0.6, min_lr: 0.0006, warmup: 0, total: 100, shape: ramp, start_lr: 0.0 };
        assert!((s.lr(0, 0) - 0.6).abs() < 1e-12);
        assert!((s.lr(0, 100) - 0.0006).abs() < 1e-12);
    }

    #[test]
    fn linspace_warmup_is_the_swav_scripts_schedule() {
        // main_swav_unmix.py: np.linspace(start_warmup, base_lr, W) over the warmup steps, then
        // final_lr + 0.5 (base_lr - final_lr) (1 + cos(pi t / T)) for t = 0..T-1, T = total - W;
        // worked out by hand for W = 5, base 0.6, final 0.0006, total 15.
        let (lr, min_lr) = (0.6, 0.0006);
        let s = Schedule::CosineStep { lr, min_lr, warmup: 5, total: 15, shape: WarmupShape::Linspace, start_lr: 0.0 };
        let by_hand = [0.0, 0.15, 0.3, 0.45, 0.6];
        for (i, want) in by_hand.iter().enumerate() {
            assert!((s.lr(0, i) - want).abs() < 1e-12, "warmup step {i}: {} vs {want}", s.lr(0, i));
        }
        for t in 0..10 {
            let want = min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * t as f64 / 10.0).cos());
            assert!((s.lr(0, 5 + t) - want).abs() < 1e-12, "cosine step {t}");
        }
        // The step-fraction ramp the other recipes use differs at every warmup step but the last.
        let ramp = Schedule::CosineStep { lr, min_lr, warmup: 5, total: 15, shape: WarmupShape::Ramp, start_lr: 0.0 };
        assert!((ramp.lr(0, 0) - 0.12).abs() < 1e-12 && (ramp.lr(0, 4) - 0.6).abs() < 1e-12);
        // A start value (the ImageNet scripts' start_warmup 0.3), and one warmup step.
        let s = Schedule::CosineStep { lr, min_lr, warmup: 4, total: 10, shape: WarmupShape::Linspace, start_lr: 0.3 };
        assert!(
            (s.lr(0, 0) - 0.3).abs() < 1e-12 && (s.lr(0, 1) - 0.4).abs() < 1e-12 && (s.lr(0, 3) - 0.6).abs() < 1e-12
        );
        let s = Schedule::CosineStep { lr, min_lr, warmup: 1, total: 10, shape: WarmupShape::Linspace, start_lr: 0.0 };
        assert_eq!((s.lr(0, 0), s.lr(0, 1)), (0.0, 0.6));
    }
}
