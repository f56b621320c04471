//! Networks: ResNet backbones, split batch norm, projection heads, and the encoder that joins them.

pub mod bn;
pub mod head;
pub mod layout;
pub mod resnet;
pub mod tally;

pub use bn::{Parts, SplitBatchNorm};
pub use head::Head;
pub use resnet::{Arch, ConvInit, ResNet, ResNetConfig};

use tch::{nn, Device, Tensor};

/// `model.memory_format`: the memory layout of the network's weights and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// Channels-last on the CPU (oneDNN's convolutions use NHWC directly), contiguous on CUDA.
    #[default]
    Auto,
    ChannelsLast,
    Contiguous,
}

impl MemoryFormat {
    /// Whether a network on `device` runs in channels-last memory.
    pub fn channels_last_on(self, device: Device) -> bool {
        match self {
            MemoryFormat::ChannelsLast => true,
            MemoryFormat::Contiguous => false,
            MemoryFormat::Auto => device == Device::Cpu,
        }
    }
}

/// Which features evaluation uses (`eval.features`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Features {
    /// The projection head's output (the authors' kNN monitor).
    Head,
    /// The pooled backbone features (linear probes, transfer).
    Backbone,
}

/// Backbone followed by a projection head: what MoCo calls an encoder.
#[derive(Debug)]
pub struct Encoder {
    pub backbone: ResNet,
    pub head: Head,
}

impl Encoder {
    pub fn new(p: &nn::Path, backbone: &ResNetConfig, head: &head::HeadConfig) -> Self {
        let backbone = ResNet::new(&(p / "backbone"), backbone);
        let head = Head::new(&(p / "head"), backbone.out_dim(), head);
        Encoder { backbone, head }
    }

    /// Head output (not normalized).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.head.forward_t(&self.backbone.forward_t(x, train), train)
    }

    /// Evaluation features (eval-mode network).
    pub fn embed(&self, x: &Tensor, which: Features) -> Tensor {
        match which {
            Features::Head => self.forward_t(x, false),
            Features::Backbone => self.backbone.forward_t(x, false),
        }
    }

    /// Its batch-norm layers, backbone and head.
    pub fn norms(&self) -> Vec<&SplitBatchNorm> {
        let mut n = self.backbone.norms();
        n.extend(self.head.norms());
        n
    }

    /// Backbone features and head output of one forward pass.
    pub fn forward_parts(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let f = self.backbone.forward_t(x, train);
        let out = self.head.forward_t(&f, train);
        (f, out)
    }
}

/// The variables of a store, sorted by name: a stable order for EMA updates, optimizer state and
/// checkpoints.
pub fn named_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The trainable variables of a store, sorted by name.
pub fn named_trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    named_variables(vs).into_iter().filter(|(_, t)| t.requires_grad()).collect()
}

/// `target = m * target + (1 - m) * online` for every trainable variable of `online` that `target`
/// also has (by name); batch-norm buffers are left to evolve on their own, as MoCo and BYOL do.
pub fn ema_update(target: &nn::VarStore, online: &nn::VarStore, m: f64) {
    tch::no_grad(|| {
        let tv: std::collections::HashMap<String, Tensor> = target.variables();
        for (name, p) in named_trainable(online) {
            if let Some(t) = tv.get(&name) {
                let mut t = t.shallow_clone();
                let _ = t.g_mul_scalar_(m);
                let _ = t.g_add_(&(&p * (1.0 - m)));
            }
        }
    });
}

/// A frozen copy of (the variables `target` declares of) `online`.
pub fn init_target(target: &mut nn::VarStore, online: &nn::VarStore) {
    target.copy(online).expect("the target network's variables exist in the online network");
    target.freeze();
}
