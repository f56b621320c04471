//! Projection heads: linear (MoCo v1) or an MLP (MoCo v2, SimCLR-style).

use tch::{nn, nn::Module, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct HeadConfig {
    /// Output dimension.
    pub dim: i64,
    /// Hidden width of the MLP; 0 means a single linear layer.
    pub hidden: i64,
}

#[derive(Debug)]
pub enum Head {
    Linear(nn::Linear),
    Mlp(nn::Linear, nn::Linear),
}

impl Head {
    pub fn new(p: &nn::Path, in_dim: i64, cfg: &HeadConfig) -> Self {
        if cfg.hidden == 0 {
            Head::Linear(torch_linear(&(p / "fc"), in_dim, cfg.dim))
        } else {
            Head::Mlp(torch_linear(&(p / "fc1"), in_dim, cfg.hidden), torch_linear(&(p / "fc2"), cfg.hidden, cfg.dim))
        }
    }

    pub fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
        match self {
            Head::Linear(l) => l.forward(x),
            Head::Mlp(a, b) => b.forward(&a.forward(x).relu()),
        }
    }
}

/// A linear layer initialized as PyTorch's `nn.Linear`: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
pub fn torch_linear(p: &nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let init = nn::Init::Uniform { lo: -bound, up: bound };
    nn::linear(p, in_dim, out_dim, nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true })
}
