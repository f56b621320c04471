//! `--init-from FILE`: a new run's encoders start from existing weights: an unmix checkpoint (its
//! query encoder), an unmix export, or a torchvision-named ResNet state dict, as safetensors or as
//! a PyTorch `.pth` written by `torch.save(model.state_dict())` (read by the `pytorch-reader`
//! crate, no unpickler of ours). Every backbone of the method (query and key/target encoders
//! alike) takes the file's backbone; the projection head takes the file's when it has one of the
//! same shapes. Strict: missing, unexpected and mismatched backbone keys are listed by name; a
//! missing head is an error unless `model.init_allow_missing_head` allows it.

use crate::checkpoint;
use crate::method::Method;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Kind, Tensor};

/// The file's tensors sorted into a backbone and a head (names without their prefix), and what
/// kind of file it was.
struct Source {
    kind: &'static str,
    backbone: BTreeMap<String, Tensor>,
    head: BTreeMap<String, Tensor>,
}

/// All tensors of a `.pth` state dict (PyTorch's zip or legacy format).
fn read_pth(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| anyhow!("{e}"))?;
    let mut out = Vec::new();
    for (name, t) in reader.tensors() {
        use pytorch_reader::DType as D;
        let kind = match t.dtype() {
            D::F64 => Kind::Double,
            D::F32 => Kind::Float,
            D::F16 => Kind::Half,
            D::BF16 => Kind::BFloat16,
            D::I64 => Kind::Int64,
            D::I32 => Kind::Int,
            D::I16 => Kind::Int16,
            D::I8 => Kind::Int8,
            D::U8 | D::Bool => Kind::Uint8,
            d => bail!("tensor `{name}` has element type {d:?}, which no ResNet weight has"),
        };
        let bytes = t.read().with_context(|| format!("reading tensor `{name}`"))?;
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        out.push((name.clone(), Tensor::f_from_data_size(&bytes, &shape, kind)?));
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Source> {
    let is_pth = path.extension().is_some_and(|e| e == "pth" || e == "pt");
    let (tensors, unmix_checkpoint) = if is_pth {
        (read_pth(path)?, false)
    } else if let Ok((t, _)) = checkpoint::load(path) {
        (t, true)
    } else {
        let t = Tensor::read_safetensors(path)
            .map_err(|e| anyhow!("{e}"))
            .context("neither safetensors nor a PyTorch .pth (name it .pth)")?;
        (t, false)
    };
    let mut src = Source {
        kind: if unmix_checkpoint {
            "an unmix checkpoint (its query encoder)"
        } else {
            "a torchvision-named state dict"
        },
        backbone: BTreeMap::new(),
        head: BTreeMap::new(),
    };
    for (name, t) in tensors {
        // torchvision's BatchNorm2d step counter: no weight of ours.
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        if unmix_checkpoint {
            if let Some(n) = name.strip_prefix("q.backbone.") {
                src.backbone.insert(n.to_string(), t);
            } else if let Some(n) = name.strip_prefix("q.head.") {
                src.head.insert(n.to_string(), t);
            }
        } else if let Some(n) = name.strip_prefix("fc.") {
            // An unmix export's linear head, or torchvision's classifier.
            src.head.insert(format!("fc.{n}"), t);
        } else {
            src.backbone.insert(name, t);
        }
    }
    if src.backbone.is_empty() {
        bail!("it holds no backbone weights (torchvision names such as conv1.weight, layer1.0.bn1.weight)");
    }
    Ok(src)
}

/// "a, b, c and 4 more".
fn some(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
    match names.len() {
        n if n > 6 => format!("{} and {} more", shown.join(", "), n - 6),
        _ => shown.join(", "),
    }
}

/// The method's tensors under `part` ("backbone" or "head"), by name inside it, each with the
/// full names of every encoder's copy (`q.backbone.X`, `k.backbone.X`).
fn live(state: &[(String, Tensor)], part: &str) -> BTreeMap<String, Vec<Tensor>> {
    let mut out: BTreeMap<String, Vec<Tensor>> = BTreeMap::new();
    let tag = format!("{part}.");
    for (name, t) in state {
        if let Some(i) = name.find(&tag).filter(|&i| i == 0 || name.as_bytes()[i - 1] == b'.') {
            out.entry(name[i + tag.len()..].to_string()).or_default().push(t.shallow_clone());
        }
    }
    out
}

/// Checks that `have` matches `want` name by name and shape by shape: the names missing, the
/// unexpected ones and the mismatched shapes.
fn mismatches(want: &BTreeMap<String, Vec<Tensor>>, have: &BTreeMap<String, Tensor>) -> Vec<String> {
    let mut bad = Vec::new();
    let missing: Vec<String> = want.keys().filter(|k| !have.contains_key(*k)).cloned().collect();
    let unexpected: Vec<String> = have.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
    let shapes: Vec<String> = want
        .iter()
        .filter_map(|(k, ts)| {
            let h = have.get(k)?;
            (h.size() != ts[0].size()).then(|| format!("{k} ({:?} in the file, {:?} here)", h.size(), ts[0].size()))
        })
        .collect();
    if !missing.is_empty() {
        bad.push(format!("missing: {}", some(&missing)));
    }
    if !unexpected.is_empty() {
        bad.push(format!("unexpected: {}", some(&unexpected)));
    }
    if !shapes.is_empty() {
        bad.push(format!("other shapes: {}", some(&shapes)));
    }
    bad
}

fn copy(want: &BTreeMap<String, Vec<Tensor>>, have: &BTreeMap<String, Tensor>) {
    tch::no_grad(|| {
        for (k, ts) in want {
            for t in ts {
                t.shallow_clone().copy_(&have[k].to_kind(t.kind()).to_device(t.device()));
            }
        }
    });
}

/// Starts `method`'s encoders from the weights in `path`; the sentence that says what was loaded.
pub fn init_from(method: &mut dyn Method, path: &Path, allow_missing_head: bool) -> Result<String> {
    let ctx = || format!("model.init_from = {}", path.display());
    if !path.is_file() {
        bail!(
            "{}: no such file (give an unmix checkpoint or export, or a ResNet state dict as .safetensors or .pth)",
            ctx()
        );
    }
    let src = read(path).with_context(ctx)?;
    let state = method.state();
    let (backbone, head) = (live(&state, "backbone"), live(&state, "head"));
    let bad = mismatches(&backbone, &src.backbone);
    if !bad.is_empty() {
        bail!(
            "{}: its backbone does not fit this model ({}); check model.arch, widths, in_channels and cifar_stem",
            ctx(),
            bad.join("; ")
        );
    }
    copy(&backbone, &src.backbone);
    let head_bad = mismatches(&head, &src.head);
    let head_said = if head_bad.is_empty() && !head.is_empty() {
        copy(&head, &src.head);
        format!(" and the head ({} tensors)", src.head.len())
    } else if allow_missing_head {
        let why = if src.head.is_empty() { "the file has none".to_string() } else { head_bad.join("; ") };
        format!("; the head starts from random weights ({why}; model.init_allow_missing_head)")
    } else if head.is_empty() {
        String::new()
    } else {
        bail!(
            "{}: the file has no head for this method's projection head ({}); add --init-allow-missing-head to start the head from random weights",
            ctx(),
            if src.head.is_empty() { "it has none".to_string() } else { head_bad.join("; ") }
        );
    };
    Ok(format!(
        "initialized from {} ({}): the backbone ({} tensors, every encoder){head_said}",
        path.display(),
        src.kind,
        src.backbone.len()
    ))
}
