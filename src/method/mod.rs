//! Self-supervised methods, one file each. A method owns its networks and computes its loss for
//! one step; Un-Mix reaches it as an optional [`Mixed`] batch, and the method only supplies the
//! score of mixed outputs against its own (unmixed) targets. Loss functions live in [`losses`].

pub mod byol;
pub mod losses;
pub mod moco;
pub mod redundancy;
pub mod simclr;
pub mod simsiam;
pub mod swav;
pub mod wmse;

use crate::mix::Mixed;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Tensor};

pub use byol::{Byol, ByolConfig};
pub use moco::{MoCo, MoCoConfig};
pub use redundancy::{Redundancy, RedundancyLoss};
pub use simclr::{SimClr, SimClrConfig};
pub use simsiam::{SimSiam, SimSiamConfig};
pub use swav::{Swav, SwavConfig};
pub use wmse::{Wmse, WmseConfig};

/// Where a step stands in the run (for schedules inside a method, e.g. BYOL's tau).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepInfo {
    pub step: u64,
    pub total_steps: u64,
    /// The epoch this step belongs to (0-based), for methods that change at an epoch (SwAV's queue).
    pub epoch: usize,
}

/// Which view the Un-Mix mixture (built from view 1) is scored against, for methods where the
/// authors say either works (SimCLR, BYOL): view 2 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixTarget {
    View1,
    View2,
}

pub use crate::model::Features;

/// What the training loop needs from a method.
pub trait Method {
    /// The variables the optimizer updates.
    fn trainable(&self) -> &nn::VarStore;
    /// The loss of one step. `views[0]` is view 1 (the one Un-Mix mixes), `views[1]` view 2, and
    /// any further views are multi-crop small crops (methods that accept them); the mixtures of
    /// the small crops at even positions (views 2, 4, ...) are in `mixed.crops`.
    /// `rng` is this step's stream (batch shuffles); it is the same on resume. Errors come from
    /// the process group (a peer that stopped answering a gather), never from the data.
    fn loss(&mut self, views: &[Tensor], mixed: Option<&Mixed>, info: &StepInfo, rng: &mut ChaCha8Rng) -> anyhow::Result<Tensor>;
    /// Variables the optimizer must leave alone at this step (SwAV's frozen prototypes).
    fn frozen(&self, _name: &str, _info: &StepInfo) -> bool {
        false
    }
    /// The (detached) backbone features of view 1 from the last [`Method::loss`], for the online
    /// linear probe.
    fn take_features(&mut self) -> Option<Tensor>;
    /// After the optimizer step (target-network EMA updates).
    fn after_step(&mut self, _info: &StepInfo) {}
    /// Evaluation features (eval-mode network, not normalized).
    fn embed(&self, x: &Tensor, features: Features) -> Tensor;
    /// Everything a checkpoint must hold to continue exactly (networks, queues, pointers).
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restores [`Method::state`]; errors name the missing tensor.
    fn load_state(&mut self, state: &[(String, Tensor)]) -> anyhow::Result<()>;
    /// Multi-process runs: the process group, for methods whose semantics span processes (MoCo's
    /// shuffle-BN and queue). Methods without cross-sample terms need nothing: their gradients
    /// are averaged by the training loop.
    fn set_dist(&mut self, _dist: Option<std::sync::Arc<crate::dist::Dist>>) {}
    /// Whether each process's loss is the loss of the whole global batch (gradients reaching its
    /// own samples only), so gradients are summed over processes rather than averaged.
    fn global_loss(&self) -> bool {
        false
    }
}

/// The parts of [`Method`] that are the same for every method with one trainable store `vs`
/// (checkpointed as `q.`), an encoder field, and the stashed view-1 features `feats`.
macro_rules! single_store_parts {
    ($encoder:ident) => {
        fn trainable(&self) -> &tch::nn::VarStore {
            &self.vs
        }

        fn take_features(&mut self) -> Option<tch::Tensor> {
            self.feats.take()
        }

        fn embed(&self, x: &tch::Tensor, features: $crate::method::Features) -> tch::Tensor {
            self.$encoder.embed(x, features)
        }

        fn state(&self) -> Vec<(String, tch::Tensor)> {
            $crate::method::stores_state(&[("q.", &self.vs)])
        }

        fn load_state(&mut self, state: &[(String, tch::Tensor)]) -> anyhow::Result<()> {
            $crate::method::load_stores(&[("q.", &self.vs)], state)
        }
    };
}
pub(crate) use single_store_parts;

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

/// Checkpoint state of var stores under prefixes (`q.`, `k.`, ...).
pub fn stores_state(stores: &[(&str, &nn::VarStore)]) -> Vec<(String, Tensor)> {
    stores
        .iter()
        .flat_map(|(p, vs)| crate::model::named_variables(vs).into_iter().map(move |(n, t)| (format!("{p}{n}"), t)))
        .collect()
}

/// Restores var stores saved by [`stores_state`].
pub fn load_stores(stores: &[(&str, &nn::VarStore)], state: &[(String, Tensor)]) -> anyhow::Result<()> {
    for (p, vs) in stores {
        copy_named(&crate::model::named_variables(vs), state, p)?;
    }
    Ok(())
}
