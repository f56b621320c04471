//! Self-supervised methods, one file each. A method owns its networks and computes its loss for
//! one step; a mixture (Un-Mix, or a rival) reaches it as an optional [`Mixture`], and the method
//! forwards what the mixture asks and supplies the score of mixed outputs against its own
//! (unmixed) targets. Loss functions live in [`losses`].

pub mod byol;
pub mod losses;
pub mod moco;
pub mod redundancy;
pub mod simclr;
pub mod simsiam;
pub mod swav;
pub mod wmse;

use crate::mix::{MixTarget, Mixture, UnMixConfig};
use crate::model::ResNetConfig;
use anyhow::{anyhow, bail, Result};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

pub use byol::{Byol, ByolConfig};
pub use moco::{MoCo, MoCoConfig};
pub use redundancy::{BarlowConfig, Redundancy, RedundancyLoss, VicRegConfig};
pub use simclr::{SimClr, SimClrConfig};
pub use simsiam::{SimSiam, SimSiamConfig};
pub use swav::{Swav, SwavConfig};
pub use wmse::{Wmse, WmseConfig};

pub use crate::model::Features;

/// The `[method]` section: the base method, by `name`, with that method's own settings (each
/// struct lives in its method's file, with its defaults and its checks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum MethodConfig {
    /// MoCo v1 (linear head), v2 (`mlp_hidden`), v3-style options.
    Moco(MoCoConfig),
    Simclr(SimClrConfig),
    Byol(ByolConfig),
    Swav(SwavConfig),
    Simsiam(SimSiamConfig),
    /// Barlow Twins.
    Barlow(BarlowConfig),
    Vicreg(VicRegConfig),
    Wmse(WmseConfig),
}

/// What a method's settings are checked against besides themselves.
#[derive(Clone, Copy, Debug)]
pub struct RunContext<'a> {
    /// Images per process and step (`train.batch_size`).
    pub batch_size: usize,
    /// Processes of a data-parallel run (1 when checking a config file).
    pub processes: usize,
    pub unmix: &'a UnMixConfig,
}

impl RunContext<'_> {
    /// The images of one step over all processes.
    pub fn global_batch(&self) -> i64 {
        (self.batch_size * self.processes) as i64
    }
}

impl MethodConfig {
    /// The method's name in the config (`method.name`).
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Moco(_) => "moco",
            MethodConfig::Simclr(_) => "simclr",
            MethodConfig::Byol(_) => "byol",
            MethodConfig::Swav(_) => "swav",
            MethodConfig::Simsiam(_) => "simsiam",
            MethodConfig::Barlow(_) => "barlow",
            MethodConfig::Vicreg(_) => "vicreg",
            MethodConfig::Wmse(_) => "wmse",
        }
    }

    /// The projection head's settings, shared by every method.
    pub fn projector(&self) -> Projector {
        match self {
            MethodConfig::Moco(c) => c.projector(),
            MethodConfig::Simclr(c) => c.projector(),
            MethodConfig::Byol(c) => c.projector(),
            MethodConfig::Swav(c) => c.projector(),
            MethodConfig::Simsiam(c) => c.projector(),
            MethodConfig::Barlow(c) => c.projector(),
            MethodConfig::Vicreg(c) => c.projector(),
            MethodConfig::Wmse(c) => c.projector(),
        }
    }

    /// Whether the method takes multi-crop small crops (`augment.small_crops`).
    pub fn takes_small_crops(&self) -> bool {
        matches!(self, MethodConfig::Swav(_))
    }

    /// Checks the settings against each other and the run; errors name the key and the fix.
    pub fn validate(&self, ctx: &RunContext) -> Result<()> {
        self.projector().validate()?;
        if ctx.unmix.enabled && ctx.unmix.groups > 1 && !matches!(self, MethodConfig::Moco(_)) {
            bail!(
                "unmix.groups = {}: mixing in groups is implemented for method moco (a mean over queries, weighed per group); {}'s loss couples the batch: set unmix.groups = 1",
                ctx.unmix.groups,
                self.name()
            );
        }
        match self {
            MethodConfig::Moco(c) => c.validate(ctx),
            MethodConfig::Swav(c) => c.validate(ctx),
            MethodConfig::Simclr(c) => c.validate(),
            MethodConfig::Byol(c) => c.validate(),
            MethodConfig::Simsiam(c) => c.validate(),
            MethodConfig::Barlow(c) => c.validate(),
            MethodConfig::Vicreg(c) => c.validate(),
            MethodConfig::Wmse(c) => c.validate(ctx),
        }
    }

    /// The method on `device` with the given backbone.
    pub fn build(&self, device: Device, backbone: &ResNetConfig, ctx: &RunContext) -> Box<dyn Method> {
        let target = ctx.unmix.target;
        match self {
            MethodConfig::Moco(c) => Box::new(MoCo::new(device, backbone, c.clone())),
            MethodConfig::Simclr(c) => Box::new(SimClr::new(device, backbone, c.clone(), target)),
            MethodConfig::Byol(c) => Box::new(Byol::new(device, backbone, c.clone(), target)),
            MethodConfig::Swav(c) => Box::new(Swav::new(device, backbone, c.clone())),
            MethodConfig::Simsiam(c) => Box::new(SimSiam::new(device, backbone, c.clone(), target)),
            MethodConfig::Barlow(c) => {
                Box::new(Redundancy::new(device, backbone, &c.projector().head(), c.loss(), target))
            }
            MethodConfig::Vicreg(c) => {
                Box::new(Redundancy::new(device, backbone, &c.projector().head(), c.loss(), target))
            }
            MethodConfig::Wmse(c) => Box::new(Wmse::new(device, backbone, c.clone(), ctx.batch_size as i64, target)),
        }
    }

    /// The `[method]` table as its method's settings, with errors that name the key inside it
    /// (`method.queue`), which serde's tagged enums lose.
    pub fn from_table(table: &toml::Table) -> Result<MethodConfig> {
        let names = "moco, simclr, byol, swav, simsiam, barlow, vicreg or wmse";
        let name = match table.get("name") {
            Some(toml::Value::String(n)) => n.clone(),
            Some(other) => bail!("key `method.name`: expected a string ({names}), got {other}"),
            None => bail!("key `method.name` is missing: name the base method ({names})"),
        };
        let mut rest = table.clone();
        rest.remove("name");
        fn parse<T: serde::de::DeserializeOwned>(rest: toml::Table) -> Result<T> {
            serde_path_to_error::deserialize(toml::Value::Table(rest)).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    anyhow!("key `method`: {}", e.inner())
                } else {
                    anyhow!("key `method.{path}`: {}", e.inner())
                }
            })
        }
        Ok(match name.as_str() {
            "moco" => MethodConfig::Moco(parse(rest)?),
            "simclr" => MethodConfig::Simclr(parse(rest)?),
            "byol" => MethodConfig::Byol(parse(rest)?),
            "swav" => MethodConfig::Swav(parse(rest)?),
            "simsiam" => MethodConfig::Simsiam(parse(rest)?),
            "barlow" => MethodConfig::Barlow(parse(rest)?),
            "vicreg" => MethodConfig::Vicreg(parse(rest)?),
            "wmse" => MethodConfig::Wmse(parse(rest)?),
            other => bail!("key `method.name`: \"{other}\" is not a method; use {names}"),
        })
    }
}

/// Declares a method's settings struct (`deny_unknown_fields`, serde defaults) with the
/// projection-head keys every method shares (`dim`, `mlp_hidden`, `mlp_bn`, `mlp_layers`)
/// before the method's own, so the `[method]` table stays flat and each key is declared once.
macro_rules! method_settings {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Output dimension of the projection head.
            #[serde(default = "crate::method::default_dim")]
            pub dim: i64,
            /// Hidden width of the projection MLP (0 = linear head, MoCo v1).
            #[serde(default)]
            pub mlp_hidden: i64,
            /// Batch norm after the projection MLP's hidden layers (SimCLR/BYOL style).
            #[serde(default)]
            pub mlp_bn: bool,
            /// Linear layers of the projection MLP: 2 (Linear-BN-ReLU-Linear) or more (3: the
            /// Barlow Twins / VICReg projector).
            #[serde(default = "crate::method::default_mlp_layers")]
            pub mlp_layers: usize,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// The projection head's settings.
            pub fn projector(&self) -> crate::method::Projector {
                crate::method::Projector { dim: self.dim, mlp_hidden: self.mlp_hidden, mlp_bn: self.mlp_bn, mlp_layers: self.mlp_layers }
            }
        }
    };
}
pub(crate) use method_settings;

pub(crate) fn default_dim() -> i64 {
    128
}
pub(crate) fn default_mlp_layers() -> usize {
    2
}

/// The projection head of every method (the keys `dim`, `mlp_hidden`, `mlp_bn`, `mlp_layers`).
#[derive(Clone, Debug, PartialEq)]
pub struct Projector {
    pub dim: i64,
    pub mlp_hidden: i64,
    pub mlp_bn: bool,
    pub mlp_layers: usize,
}

impl Projector {
    pub fn head(&self) -> crate::model::head::HeadConfig {
        crate::model::head::HeadConfig {
            dim: self.dim,
            hidden: self.mlp_hidden,
            bn: self.mlp_bn,
            layers: self.mlp_layers,
        }
    }

    /// The predictor MLP of BYOL, SimSiam and MoCo v3 (two layers, batch norm), onto `dim`.
    pub fn predictor(&self, hidden: i64) -> crate::model::head::HeadConfig {
        crate::model::head::HeadConfig { dim: self.dim, hidden, bn: true, layers: 2 }
    }

    fn validate(&self) -> Result<()> {
        if self.dim > MAX_WIDTH || self.mlp_hidden > MAX_WIDTH || self.mlp_layers > 16 {
            bail!("method.dim, method.mlp_hidden (at most {MAX_WIDTH}) or method.mlp_layers (at most 16) is beyond what unmix runs; a typing mistake?");
        }
        if self.dim <= 0 || self.mlp_hidden < 0 {
            bail!("method.dim = {} must be positive and method.mlp_hidden = {} >= 0", self.dim, self.mlp_hidden);
        }
        if self.mlp_layers < 2 {
            bail!("method.mlp_layers = {}: a projection MLP has at least 2 linear layers (use method.mlp_hidden = 0 for a linear head)", self.mlp_layers);
        }
        Ok(())
    }
}

/// The widest projection, predictor or prototype layer unmix builds.
pub(crate) const MAX_WIDTH: i64 = 1 << 16;

/// A finite positive number, or an error naming `key`.
pub(crate) fn positive(key: &str, v: f64) -> Result<()> {
    if !(v > 0.0 && v.is_finite()) {
        bail!("{key} = {v} must be a positive finite number");
    }
    Ok(())
}

/// Rejects `unmix.target = "view1"` for methods that score the mixture against view 2's targets
/// only (MoCo's keys, SwAV's codes).
pub(crate) fn view2_only(method: &str, why: &str, ctx: &RunContext) -> Result<()> {
    if ctx.unmix.enabled && ctx.unmix.target == MixTarget::View1 {
        bail!("unmix.target = \"view1\" is not defined for {method}: {why}; remove it (view2 is the default)");
    }
    Ok(())
}

/// Where a step stands in the run (for schedules inside a method, e.g. BYOL's tau).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepInfo {
    pub step: u64,
    pub total_steps: u64,
    /// The epoch this step belongs to (0-based), for methods that change at an epoch (SwAV's queue).
    pub epoch: usize,
}

/// What the training loop needs from a method.
pub trait Method {
    /// The variables the optimizer updates.
    fn trainable(&self) -> &nn::VarStore;
    /// The loss of one step. `views[0]` is view 1 (the one a mixture mixes), `views[1]` view 2, and
    /// any further views are multi-crop small crops (methods that accept them); with Un-Mix the
    /// mixtures of the small crops at even positions (views 2, 4, ...) are in `Mixed::crops`.
    /// i-Mix and MixCo ([`Mixture::Virtual`]) reach only the methods the config allows them for.
    /// `rng` is this step's stream (batch shuffles); it is the same on resume. Errors come from
    /// the process group (a peer that stopped answering a gather), never from the data.
    fn loss(
        &mut self,
        views: &[Tensor],
        mixture: Option<&Mixture>,
        info: &StepInfo,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Tensor>;
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
    /// Every weight, buffer and queue in float64 (`train.precision = "fp64"`, the precision of the
    /// equivalence tests).
    fn to_double(&mut self);
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

        fn to_double(&mut self) {
            self.vs.double();
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
            let s = map.get(key.as_str()).ok_or_else(|| {
                anyhow::anyhow!("checkpoint has no tensor `{key}`: it was written by a different model or method")
            })?;
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
