//! Taking an encoder elsewhere: the backbone as torchvision-named safetensors weights whose header
//! says what network they are, a PyTorch module file that builds that network and loads them
//! strictly, and embeddings with their labels in one `.npz`.

use crate::build::LoadedRun;
use crate::method::Features;
use crate::model::Arch;
use anyhow::{Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Which images `unmix embed` embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedSplit {
    /// The labeled train split (the kNN bank).
    Train,
    /// The labeled test split.
    Test,
    /// The pretraining images (e.g. one's own unlabeled photos), labels 0 where there are none.
    Images,
}

/// Writes the embeddings of `split` of a rebuilt network, with their labels, into one NumPy `.npz`
/// file (`embeddings`: N x D float32, `labels`: N int64), and for image files their paths in the
/// same order, one per line, into `OUT.files.txt`. Returns the embeddings' shape and the file list's
/// path, if written.
pub fn write_embeddings(
    run: &LoadedRun,
    split: EmbedSplit,
    which: Features,
    out: &Path,
) -> Result<(Vec<i64>, Option<std::path::PathBuf>)> {
    let set = match split {
        EmbedSplit::Train => crate::data::load_split(&run.cfg, true)?,
        EmbedSplit::Test => crate::data::load_split(&run.cfg, false)?,
        EmbedSplit::Images => crate::data::load_pretrain(&run.cfg)?,
    };
    let x = crate::eval::embed_split(&run.cfg, run.device, run.method.as_ref(), &set, which, false)?;
    let x = x.to_kind(Kind::Float).to_device(tch::Device::Cpu);
    let labels = crate::eval::linear::labels_tensor(&set.labels, tch::Device::Cpu);
    Tensor::write_npz(&[("embeddings", &x), ("labels", &labels)], out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let list = (!set.files.is_empty()).then(|| {
        let mut name = out.as_os_str().to_owned();
        name.push(".files.txt");
        std::path::PathBuf::from(name)
    });
    if let Some(list) = &list {
        let text: String = set.files.iter().map(|f| format!("{}\n", f.display())).collect();
        std::fs::write(list, text).with_context(|| format!("cannot write {}", list.display()))?;
    }
    Ok((x.size(), list))
}

/// `unmix export`: the backbone of `checkpoint` into `out` (torchvision names, header metadata)
/// and the PyTorch module file beside it (`out` with `.py`). Returns what to tell the user: where
/// the files are, whether torchvision's own ResNet takes the weights, and the lines that load them.
pub fn export(checkpoint: &Path, out: &Path) -> Result<String> {
    let (tensors, meta) = crate::checkpoint::load(checkpoint)?;
    crate::checkpoint::check_finite(&tensors, checkpoint)?;
    let cfg = crate::config::Config::from_saved_toml(
        &meta.config,
        &format!("the config saved in {}", checkpoint.display()),
        &[],
    )?;
    let state = torchvision_state(&tensors).with_context(|| format!("{}", checkpoint.display()))?;
    let header = crate::build::header(&cfg, meta.epoch, "backbone with torchvision's parameter names (unmix export)");
    crate::checkpoint::write_safetensors(out, &state, &header)?;
    let module = out.with_extension("py");
    let has_fc = state.iter().any(|(n, _)| n == "fc.weight");
    std::fs::write(&module, pytorch_module(&cfg, has_fc))
        .with_context(|| format!("cannot write {}", module.display()))?;
    let m = &cfg.model;
    let torchvision = m.widths == [64, 128, 256, 512] && m.input_padding == 0 && m.arch != Arch::ResNet18Bottleneck;
    let name = module.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "backbone".into());
    let dir = module.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut msg = format!(
        "wrote {} tensors with torchvision names to {}, and {}\n",
        state.len(),
        out.display(),
        module.display()
    );
    if torchvision {
        let arch = serde_json::to_value(m.arch)?.as_str().unwrap_or("resnet18").to_string();
        msg += &format!(
            "torchvision's {arch} takes these weights{}{}.\n",
            if m.cifar_stem { " with its stem replaced (3x3 stride-1 conv1, no max-pool)" } else { "" },
            if m.in_channels != 3 {
                format!(" and conv1 made for {} input channel(s)", m.in_channels)
            } else {
                String::new()
            }
        );
    } else {
        msg += &format!(
            "this network is not one of torchvision's ResNets (widths {:?}{}{}): build it with {}\n",
            m.widths,
            if m.input_padding > 0 { ", input padding" } else { "" },
            if m.arch == Arch::ResNet18Bottleneck { ", Bottleneck blocks in a [2, 2, 2, 2] layout" } else { "" },
            module.display()
        );
    }
    msg += &format!(
        "in PyTorch:\n    import sys; sys.path.insert(0, {dir:?})\n    from {name} import load\n    model = load({out:?})  # strict load; model(x) gives {}\n",
        if has_fc { "the projection head's output; model.fc = torch.nn.Identity() gives the pooled features" } else { "the pooled backbone features" },
        dir = dir.display().to_string(),
        out = out.display().to_string(),
    );
    Ok(msg)
}

/// A self-contained PyTorch file that builds the network of `cfg` with torchvision's parameter
/// names (and `fc` when the export has the linear head) and loads an export into it strictly.
pub fn pytorch_module(cfg: &crate::config::Config, has_fc: bool) -> String {
    let m = &cfg.model;
    let (block, layers) = match m.arch {
        Arch::ResNet18 => ("BasicBlock", [2, 2, 2, 2]),
        Arch::ResNet34 => ("BasicBlock", [3, 4, 6, 3]),
        Arch::ResNet50 => ("Bottleneck", [3, 4, 6, 3]),
        Arch::ResNet18Bottleneck => ("Bottleneck", [2, 2, 2, 2]),
    };
    let fc = if has_fc { cfg.method.projector().dim } else { 0 };
    PYTORCH_MODULE
        .replace("{BLOCK}", block)
        .replace("{LAYERS}", &format!("{layers:?}"))
        .replace("{WIDTHS}", &format!("{:?}", m.widths))
        .replace("{IN_CHANNELS}", &m.in_channels.to_string())
        .replace("{CIFAR_STEM}", if m.cifar_stem { "True" } else { "False" })
        .replace("{INPUT_PADDING}", &m.input_padding.to_string())
        .replace("{FC}", &fc.to_string())
        .replace("{METHOD}", cfg.method.name())
}

const PYTORCH_MODULE: &str = r#""""The network of an `unmix export`, as a PyTorch module with torchvision's parameter names.

    from backbone import load          # this file, beside the .safetensors export
    model = load("backbone.safetensors")   # strict: every tensor must match
    features = model(images)           # images: N x {IN_CHANNELS} x H x W, normalized as in training

Written by unmix export ({METHOD} run): ResNet with {BLOCK} blocks {LAYERS}, widths {WIDTHS},
{IN_CHANNELS} input channel(s), CIFAR stem {CIFAR_STEM}, input padding {INPUT_PADDING}, linear head
of {FC} outputs (0: none; the output is then the pooled backbone features).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or cin != width:
            self.downsample = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        out = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, block={BLOCK}, layers={LAYERS}, widths={WIDTHS}, in_channels={IN_CHANNELS},
                 cifar_stem={CIFAR_STEM}, input_padding={INPUT_PADDING}, fc={FC}):
        super().__init__()
        self.input_padding = input_padding
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for i, (n, width) in enumerate(zip(layers, widths)):
            blocks = []
            for b in range(n):
                blocks.append(block(cin, width, 2 if i > 0 and b == 0 else 1))
                cin = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_dim = cin
        self.fc = nn.Linear(cin, fc) if fc else nn.Identity()

    def forward(self, x):
        if self.input_padding:
            x = F.pad(x, [self.input_padding] * 4)
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build():
    return ResNet()


def load(path):
    from safetensors.torch import load_file
    model = build()
    model.load_state_dict(load_file(path), strict=True)
    return model.eval()
"#;
/// The trained (query/online) backbone of a method's checkpoint state under torchvision's
/// parameter names, so `torchvision.models.resnet18()` (with the CIFAR stem swapped in where used,
/// and `fc = nn.Identity()`) loads it with `strict=True`. A linear projection head (MoCo v1) is
/// exported as `fc`, so `resnet18(num_classes=dim)` loads it whole.
pub fn torchvision_state(state: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for (name, t) in state {
        let Some(rest) = name.strip_prefix("q.") else { continue };
        if let Some(n) = rest.strip_prefix("backbone.") {
            out.push((n.to_string(), t.shallow_clone()));
            // torchvision's BatchNorm2d carries a step counter that strict loading requires.
            if let Some(bn) = n.strip_suffix(".running_mean") {
                out.push((format!("{bn}.num_batches_tracked"), Tensor::from_slice(&[0i64]).reshape([] as [i64; 0])));
            }
        } else if let Some(p) = rest.strip_prefix("head.fc.") {
            out.push((format!("fc.{p}"), t.shallow_clone()));
        }
    }
    if out.is_empty() {
        anyhow::bail!("the checkpoint holds no backbone (`q.backbone.*` tensors)");
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
