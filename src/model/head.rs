//! Projection and prediction heads: linear (MoCo v1), MLP without BN (MoCo v2), MLP with BN
//! (SimCLR/BYOL/SimSiam style: Linear-BN-ReLU-Linear), and deeper MLPs with more hidden blocks
//! (Barlow Twins / VICReg projectors: Linear-BN-ReLU-Linear-BN-ReLU-Linear).

use super::bn::SplitBatchNorm;
use tch::{nn, nn::Module, Tensor};

#[derive(Clone, Debug, PartialEq)]
pub struct HeadConfig {
    /// Output dimension.
    pub dim: i64,
    /// Hidden width of the MLP; 0 means a single linear layer.
    pub hidden: i64,
    /// Batch norm after each hidden layer.
    pub bn: bool,
    /// Linear layers of the MLP (2: one hidden block; 3: two, ...). Ignored when `hidden` is 0.
    pub layers: usize,
}

#[derive(Debug)]
pub enum Head {
    Linear(nn::Linear),
    /// Hidden blocks (Linear, optional BN, then ReLU) and the output layer. Variables are named
    /// fc1, bn1, ..., fcN (N = layers), so a two-layer head is fc1, bn1, fc2.
    Mlp {
        hidden: Vec<(nn::Linear, Option<SplitBatchNorm>)>,
        out: nn::Linear,
    },
}

impl Head {
    pub fn new(p: &nn::Path, in_dim: i64, cfg: &HeadConfig) -> Self {
        if cfg.hidden == 0 {
            return Head::Linear(torch_linear(&(p / "fc"), in_dim, cfg.dim));
        }
        let layers = cfg.layers.max(2);
        let hidden = (1..layers)
            .map(|i| {
                let fc = torch_linear(&(p / format!("fc{i}")), if i == 1 { in_dim } else { cfg.hidden }, cfg.hidden);
                (fc, cfg.bn.then(|| SplitBatchNorm::new(&(p / format!("bn{i}")), cfg.hidden, 1)))
            })
            .collect();
        Head::Mlp { hidden, out: torch_linear(&(p / format!("fc{layers}")), cfg.hidden, cfg.dim) }
    }

    /// Its batch-norm layers (none without BN).
    pub fn norms(&self) -> Vec<&SplitBatchNorm> {
        match self {
            Head::Linear(_) => Vec::new(),
            Head::Mlp { hidden, .. } => hidden.iter().filter_map(|(_, bn)| bn.as_ref()).collect(),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Head::Linear(l) => l.forward(x),
            Head::Mlp { hidden, out } => {
                let mut h = x.shallow_clone();
                for (fc, bn) in hidden {
                    h = fc.forward(&h);
                    if let Some(bn) = bn {
                        h = bn.forward_t(&h, train);
                    }
                    h = h.relu();
                }
                out.forward(&h)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn deeper_heads_chain_hidden_blocks_and_two_layers_keep_their_names() {
        let vs = nn::VarStore::new(Device::Cpu);
        let head = Head::new(&(vs.root() / "head"), 6, &HeadConfig { dim: 3, hidden: 5, bn: false, layers: 3 });
        let mut names: Vec<(String, Vec<i64>)> = vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
        names.sort();
        let expect: Vec<(String, Vec<i64>)> = [
            ("head.fc1.bias", vec![5]),
            ("head.fc1.weight", vec![5, 6]),
            ("head.fc2.bias", vec![5]),
            ("head.fc2.weight", vec![5, 5]),
            ("head.fc3.bias", vec![3]),
            ("head.fc3.weight", vec![3, 5]),
        ]
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
        assert_eq!(names, expect);
        // The forward pass is fc3(relu(fc2(relu(fc1(x))))).
        let v = vs.variables();
        let lin =
            |x: &Tensor, k: usize| x.matmul(&v[&format!("head.fc{k}.weight")].tr()) + &v[&format!("head.fc{k}.bias")];
        let x = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
        let by_hand = lin(&lin(&lin(&x, 1).relu(), 2).relu(), 3);
        let diff = (head.forward_t(&x, true) - by_hand).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
        // A two-layer head with BN: fc1, bn1, fc2 as before (checkpoints stay readable).
        let vs2 = nn::VarStore::new(Device::Cpu);
        let _ = Head::new(&(vs2.root() / "head"), 6, &HeadConfig { dim: 3, hidden: 5, bn: true, layers: 2 });
        let mut n2: Vec<String> =
            vs2.variables().into_keys().filter(|n| !n.contains("running") && !n.contains("num_batches")).collect();
        n2.sort();
        assert_eq!(
            n2,
            [
                "head.bn1.bias",
                "head.bn1.weight",
                "head.fc1.bias",
                "head.fc1.weight",
                "head.fc2.bias",
                "head.fc2.weight"
            ]
        );
    }
}
