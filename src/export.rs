//! Taking an encoder elsewhere: torchvision-named safetensors weights and `.npy` embeddings.

use crate::build::LoadedRun;
use crate::method::Features;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Writes the embeddings of the train (`train`) or test split of a rebuilt network to `out`
/// (`.npy`, N x D) and their labels beside it (`.labels.npy`). Returns the shape and the labels'
/// path.
pub fn write_embeddings(run: &LoadedRun, train: bool, which: Features, out: &Path) -> Result<(Vec<i64>, PathBuf)> {
    let set = crate::data::load_split(&run.cfg, train)?;
    let x = crate::eval::embed_split(&run.cfg, run.device, run.method.as_ref(), &set, which, false)?;
    let labels = crate::eval::linear::labels_tensor(&set.labels, tch::Device::Cpu);
    let label_path = out.with_extension("labels.npy");
    write_npy(out, &x)?;
    write_npy(&label_path, &labels)?;
    Ok((x.size(), label_path))
}

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

/// Writes a float32 (any other float kind is converted) or int64 tensor of any shape as a NumPy
/// `.npy` file (format 1.0, C order).
pub fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let t = t.to_device(tch::Device::Cpu).contiguous();
    let (descr, bytes): (&str, Vec<u8>) = match t.kind() {
        Kind::Int64 => ("<i8", Vec::<i64>::try_from(t.flatten(0, -1))?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        _ => (
            "<f4",
            Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1))?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    };
    let shape = t.size().iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let shape = if shape.len() == 1 { format!("({},)", shape[0]) } else { format!("({})", shape.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    f.write_all(&bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
