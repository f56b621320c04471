//! One training step, as the training loop and `unmix bench step` run it: the mixture's draw
//! (Un-Mix, or a rival), the method's loss (under the configured precision), then backward, the gradient
//! all-reduce of a multi-process run, the optimizer step and the method's after-step update.

use crate::build;
use crate::config::Config;
use crate::dist::Dist;
use crate::method::{Method, StepInfo};
use crate::mix::{Mixture, MixtureSettings};
use crate::optim::{Optimizer, Schedule};
use crate::precision::{self, Precision};
use anyhow::{Context, Result};
use std::sync::Arc;
use tch::{Device, Tensor};

/// The method, its optimizer and schedule, and what a step needs from the config.
pub struct Trainer {
    pub method: Box<dyn Method>,
    pub opt: Optimizer,
    pub schedule: Schedule,
    mixture: Option<MixtureSettings>,
    precision: Precision,
    device: Device,
    dist: Option<Arc<Dist>>,
    seed: u64,
    total_steps: u64,
}

impl Trainer {
    /// Builds the method and optimizer on `device` for `steps_per_epoch` steps per epoch; with a
    /// process group, every process starts from rank 0's weights.
    pub fn new(cfg: &Config, device: Device, dist: Option<Arc<Dist>>, steps_per_epoch: usize) -> Result<Trainer> {
        let processes = dist.as_ref().map_or(1, |d| d.world);
        let mut method = build::method(cfg, device, processes);
        method.set_dist(dist.clone());
        let opt = build::optimizer(cfg, method.as_ref())?;
        if let Some(d) = &dist {
            let tensors: Vec<Tensor> = method.state().into_iter().map(|(_, t)| t).collect();
            d.broadcast_all(&tensors)?;
        }
        Ok(Trainer {
            method,
            opt,
            schedule: build::schedule(cfg, steps_per_epoch),
            mixture: cfg.mixture(),
            precision: cfg.train.precision,
            device,
            dist,
            seed: cfg.seed,
            total_steps: cfg.total_steps(steps_per_epoch) as u64,
        })
    }

    pub fn info(&self, step: u64, epoch: usize) -> StepInfo {
        StepInfo { step, total_steps: self.total_steps, epoch }
    }

    /// The loss of step `step` on `views` (view 1, view 2, small crops): the mixture's draws first,
    /// then whatever the method draws, all from the step's own random stream, so a resumed run
    /// draws exactly what an uninterrupted one does.
    pub fn forward(&mut self, views: &[Tensor], step: u64, epoch: usize) -> Result<Tensor> {
        let wide: Vec<Tensor>;
        let views = if self.precision == Precision::Fp64 {
            wide = views.iter().map(|v| v.to_kind(tch::Kind::Double)).collect();
            &wide[..]
        } else {
            views
        };
        let mut rng = unmix_data::seed::step_rng(self.seed, step);
        let rank = self.dist.as_ref().map_or(0, |d| d.rank);
        let mixture =
            self.mixture.as_ref().map(|s| draw_mixture(s, views, self.seed, step, rank, &mut rng)).transpose()?;
        let info = self.info(step, epoch);
        let method = &mut self.method;
        precision::forward(self.precision, self.device, || method.loss(views, mixture.as_ref(), &info, &mut rng))
            .with_context(|| format!("step {step} (epoch {}): the method's loss", epoch + 1))
    }

    /// Backward through `loss`, the gradients averaged (or summed, for losses over the global
    /// batch) across processes, the optimizer step at `lr` and the method's after-step update.
    pub fn update(&mut self, loss: &Tensor, lr: f64, step: u64, epoch: usize) -> Result<()> {
        let info = self.info(step, epoch);
        self.opt.zero_grad();
        loss.f_backward().context("backward pass failed")?;
        if let Some(d) = &self.dist {
            d.reduce_gradients(&self.opt.params(), self.method.global_loss())?;
        }
        let method = &self.method;
        self.opt.step_except(lr, |name| method.frozen(name, &info));
        self.method.after_step(&info);
        Ok(())
    }

    /// The method's and the optimizer's state, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut state = self.method.state();
        state.extend(self.opt.state());
        state
    }

    /// Restores [`Trainer::state`].
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        self.method.load_state(state)?;
        self.opt.load_state(state);
        Ok(())
    }
}

/// The step's mixture for process `rank`. Every process advances the step's shared stream `rng`
/// as rank 0's draw does, since the method's later draws (MoCo's key shuffle) must agree across
/// processes; a process other than rank 0 then mixes with a draw of its own, from a stream of
/// (seed, rank, step), as the authors' processes draw independently. One process: rank 0's draw
/// from the shared stream, as always.
pub fn draw_mixture(
    settings: &MixtureSettings,
    views: &[Tensor],
    seed: u64,
    step: u64,
    rank: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<Mixture> {
    let shared = Mixture::drawn(settings, views, rng)?;
    if rank == 0 {
        return Ok(shared);
    }
    let own_seed = seed ^ (rank as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    Mixture::drawn(settings, views, &mut unmix_data::seed::step_rng(own_seed, step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::unmix::UnMixConfig;
    use rand::RngCore;

    #[test]
    fn each_process_draws_its_own_mixture_and_the_shared_stream_stays_shared() {
        let settings = MixtureSettings::UnMix(UnMixConfig::default());
        let views: Vec<Tensor> =
            (0..2).map(|_| Tensor::rand([8, 1, 12, 12], (tch::Kind::Float, tch::Device::Cpu))).collect();
        let mut draws = Vec::new();
        let mut after = Vec::new();
        for rank in 0..4 {
            let mut rng = unmix_data::seed::step_rng(5, 7);
            let m = draw_mixture(&settings, &views, 5, 7, rank, &mut rng).unwrap();
            draws.push(format!("{:?}", m.unmix().unwrap().draws()));
            after.push(rng.next_u64());
        }
        // The shared stream is where rank 0's draw leaves it, on every process.
        assert!(after.iter().all(|&a| a == after[0]), "{after:?}");
        // Rank 0 draws what a single process draws; the others draw apart from it and each other.
        let mut single = unmix_data::seed::step_rng(5, 7);
        let alone = Mixture::drawn(&settings, &views, &mut single).unwrap();
        assert_eq!(draws[0], format!("{:?}", alone.unmix().unwrap().draws()));
        for i in 0..4 {
            for j in 0..i {
                assert_ne!(draws[i], draws[j], "ranks {j} and {i} mixed alike");
            }
        }
        // The same (seed, rank, step) draws the same again: a resumed run mixes as before.
        let mut rng = unmix_data::seed::step_rng(5, 7);
        let again = draw_mixture(&settings, &views, 5, 7, 2, &mut rng).unwrap();
        assert_eq!(draws[2], format!("{:?}", again.unmix().unwrap().draws()));
    }
}
