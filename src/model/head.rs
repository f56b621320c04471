//! Projection and prediction heads: linear (MoCo v1), MLP without BN (MoCo v2), MLP with BN
//! (SimCLR/BYOL/SimSiam style: Linear-BN-ReLU-Linear).

use super::bn::SplitBatchNorm;
use tch::{nn, nn::Module, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct HeadConfig {
    /// Output dimension.
    pub dim: i64,
    /// Hidden width of the MLP; 0 means a single linear layer.
    pub hidden: i64,
    /// Batch norm after the hidden layer.
    pub bn: bool,
}

#[derive(Debug)]
pub enum Head {
    Linear(nn::Linear),
    Mlp { fc1: nn::Linear, bn: Option<SplitBatchNorm>, fc2: nn::Linear },
}

impl Head {
    pub fn new(p: &nn::Path, in_dim: i64, cfg: &HeadConfig) -> Self {
        if cfg.hidden == 0 {
            Head::Linear(torch_linear(&(p / "fc"), in_dim, cfg.dim))
        } else {
            Head::Mlp {
                fc1: torch_linear(&(p / "fc1"), in_dim, cfg.hidden),
                bn: cfg.bn.then(|| SplitBatchNorm::new(&(p / "bn1"), cfg.hidden, 1)),
                fc2: torch_linear(&(p / "fc2"), cfg.hidden, cfg.dim),
            }
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Head::Linear(l) => l.forward(x),
            Head::Mlp { fc1, bn, fc2 } => {
                let mut h = fc1.forward(x);
                if let Some(bn) = bn {
                    h = bn.forward_t(&h, train);
                }
                fc2.forward(&h.relu())
            }
        }
    }
}

/// A linear layer initialized as PyTorch's `nn.Linear`: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
pub fn torch_linear(p: &nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = nn::Init::Uniform { lo: -bound, up: bound };
    nn::linear(p, in_dim, out_dim, nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true })
}
