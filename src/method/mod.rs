//! Self-supervised methods. Each owns its networks and computes its loss for one step; Un-Mix
//! reaches it as an optional [`Mixed`] batch and the method only supplies the score of mixed
//! outputs against its own targets.

pub mod moco;

use crate::mix::Mixed;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Tensor};

pub use moco::{MoCo, MoCoConfig};

/// What the training loop needs from a method.
pub trait Method {
    /// The variables the optimizer updates.
    fn trainable(&self) -> &nn::VarStore;
    /// The loss of one step. `views[0]` is view 1 (the one Un-Mix mixes), `views[1]` view 2.
    /// `rng` is this step's stream (for batch shuffles); it is the same on resume.
    fn loss(&mut self, views: &[Tensor], mixed: Option<&Mixed>, rng: &mut ChaCha8Rng) -> Tensor;
    /// Features used for kNN evaluation (eval-mode network, L2-normalized by the caller).
    fn embed(&self, x: &Tensor) -> Tensor;
    /// Everything a checkpoint must hold to continue exactly (networks, queues, pointers).
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restores [`Method::state`]; errors name the missing tensor.
    fn load_state(&mut self, state: &[(String, Tensor)]) -> anyhow::Result<()>;
}

/// Copies named tensors from a checkpoint into live tensors of the same names.
pub fn copy_named(dst: &[(String, Tensor)], src: &[(String, Tensor)], prefix: &str) -> anyhow::Result<()> {
    let map: std::collections::HashMap<&str, &Tensor> = src.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tch::no_grad(|| -> anyhow::Result<()> {
        for (name, t) in dst {
            let key = format!("{prefix}{name}");
            let s = map
                .get(key.as_str())
                .ok_or_else(|| anyhow::anyhow!("checkpoint has no tensor `{key}`: it was written by a different model or method"))?;
            if s.size() != t.size() {
                anyhow::bail!("checkpoint tensor `{key}` has shape {:?}, the model expects {:?}", s.size(), t.size());
            }
            t.shallow_clone().copy_(s);
        }
        Ok(())
    })
}
