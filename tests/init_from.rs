//! `--init-from` (issue 34): a torchvision ResNet-18 made and saved by PyTorch, as `.pth`
//! (torch.save of its state dict) and as safetensors, starts unmix's encoders, whose backbone
//! features then equal PyTorch's forward of the same weights (both in float64); a file of
//! another architecture is refused with the keys named; a run records where it started from and
//! a resume does not start there again.

use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Device, Tensor};
use unmix::config::Config;
use unmix::method::Features;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// PyTorch's resnet18 (random weights and batch-norm statistics, seed 0) saved both ways, and a
/// batch with its float64 features (fc removed) in `reference.npz`.
fn torchvision_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let script = r#"
import sys, torch, torchvision, numpy as np
from safetensors.torch import save_file
d = sys.argv[1]
torch.manual_seed(0)
m = torchvision.models.resnet18()
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.uniform_(0.5, 1.5); mod.bias.normal_(0, 0.1)
            mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 1.5)
sd = m.state_dict()
torch.save(sd, d + "/resnet18.pth")
save_file({k: v.contiguous() for k, v in sd.items()}, d + "/resnet18.safetensors")
m.fc = torch.nn.Identity()
m = m.double().eval()
x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
with torch.no_grad():
    f = m(x)
np.savez(d + "/reference.npz", x=x.numpy(), features=f.numpy())
"#;
    let o = Command::new(root().join(".venv/bin/python"))
        .args(["-c", script, dir.to_str().unwrap()])
        .output()
        .expect("the project's .venv has python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (dir.join("resnet18.pth"), dir.join("resnet18.safetensors"), dir.join("reference.npz"))
}

fn photos_config(sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::load(&root().join("configs/photos-mocov2.toml"), &sets).unwrap()
}

#[test]
fn a_torchvision_state_dict_gives_pytorchs_features_and_a_wrong_one_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (pth, st, reference) = torchvision_files(tmp.path());
    let npz = Tensor::read_npz(&reference).unwrap();
    let get = |n: &str| npz.iter().find(|(k, _)| k == n).unwrap().1.shallow_clone();
    let (x, want) = (get("x"), get("features"));
    for file in [&pth, &st] {
        let cfg = photos_config(&["train.precision=\"fp64\""]);
        let mut method = unmix::build::method(&cfg, Device::Cpu, 1);
        // torchvision's classifier is no projection head: strict refuses, the flag allows.
        let err = unmix::init::init_from(method.as_mut(), file, false).unwrap_err();
        assert!(format!("{err:#}").contains("--init-allow-missing-head"), "{err:#}");
        let said = unmix::init::init_from(method.as_mut(), file, true).unwrap();
        assert!(said.contains("the backbone (100 tensors, every encoder)") && said.contains("random"), "{said}");
        let got = tch::no_grad(|| method.embed(&x, Features::Backbone));
        let diff = (&got - &want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        assert!(diff <= 1e-10 * scale, "{}: features differ from PyTorch's by {diff} (scale {scale})", file.display());
        // The key encoder starts from the same weights.
        let state = method.state();
        let w = |n: &str| state.iter().find(|(k, _)| k == n).unwrap().1.shallow_clone();
        assert!(w("q.backbone.layer4.1.conv2.weight").equal(&w("k.backbone.layer4.1.conv2.weight")));
    }
    // Another architecture: the fmnist protocol's narrow one-channel ResNet.
    let fmnist = Config::load(&root().join("configs/fmnist-moco-unmix.toml"), &[]).unwrap();
    let mut method = unmix::build::method(&fmnist, Device::Cpu, 1);
    let err = format!("{:#}", unmix::init::init_from(method.as_mut(), &pth, true).unwrap_err());
    assert!(err.contains("other shapes: bn1.bias") && err.contains("conv1.weight ([64, 3, 7, 7] in the file"), "{err}");
    assert!(err.contains("does not fit this model"), "{err}");
}

#[test]
fn a_run_records_where_it_started_and_a_resume_does_not_start_there_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (pth, _, _) = torchvision_files(tmp.path());
    let out = tmp.path().join("run");
    let bin = env!("CARGO_BIN_EXE_unmix");
    let o = Command::new(bin)
        .args(["pretrain", "--config", "configs/photos-mocov2.toml", "--quiet", "--init-from", pth.to_str().unwrap()])
        .args([
            "--init-allow-missing-head",
            "--set",
            "train.epochs=2",
            "--until-epoch",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("initialized from") && text.contains("a torchvision-named state dict"), "{text}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains(&format!("init_from = \"{}\"", pth.display())), "{config}");
    let o =
        Command::new(bin).args(["pretrain", "--quiet", "--resume", "--out", out.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(!text.contains("initialized from"), "a resume continues from its checkpoint: {text}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["init_from"].as_str(), Some(pth.to_str().unwrap()));
}
