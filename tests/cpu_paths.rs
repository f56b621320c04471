//! The code paths that differ by CPU, each checked on its other path too, so one CI machine
//! covers both kinds of x86 CPU (AVX-512/AMX and AVX2-only):
//! - libtorch's kernels: ATen's vectorized build and oneDNN's ISA, forced down to AVX2 by
//!   `ATEN_CPU_CAPABILITY=avx2` and `ONEDNN_MAX_CPU_ISA=AVX2` in a child process that re-runs the
//!   network checks of this file;
//! - the augmentations' AVX2 and portable builds (`set_portable_kernels`);
//! - the allocator settings of the binary (`UNMIX_MALLOC_DEFAULTS=1` keeps glibc's defaults).

use std::path::Path;
use std::process::Command;
use tch::{nn, Device, Kind, Tensor};
use unmix::model::{Arch, ConvInit, ResNet, ResNetConfig};

/// Values in (-scale, scale) from a fixed formula (no random generator shared between tests).
fn fixed(shape: &[i64], phase: f64, scale: f64) -> Tensor {
    let numel: i64 = shape.iter().product();
    ((Tensor::arange(numel, (Kind::Double, Device::Cpu)) * 12.9898 + phase).sin() * 43758.5453).frac().view(shape)
        * scale
}

/// A network with fixed convolution weights (kaiming fan-out scale) in `kind`.
fn network(cfg: &ResNetConfig, kind: Kind) -> (nn::VarStore, ResNet) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), cfg);
    tch::no_grad(|| {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, (_, v)) in vars.iter().enumerate() {
            let size = v.size();
            if size.len() == 4 {
                let std = (2.0 / (size[0] * size[2] * size[3]) as f64).sqrt();
                v.shallow_clone().copy_(&fixed(&size, k as f64, std * 3f64.sqrt()).to_kind(Kind::Float));
            }
        }
    });
    if kind == Kind::Double {
        vs.double();
    }
    (vs, net)
}

/// Features of a training-mode forward pass and the gradients of a fixed projection of them,
/// all as one float64 vector, with the running statistics after the pass.
fn outputs(vs: &nn::VarStore, net: &ResNet, x: &Tensor, up: &Tensor) -> (Tensor, Tensor, Tensor) {
    let kind = vs.trainable_variables()[0].kind();
    let f = net.forward_t(&x.to_kind(kind), true);
    (&f * up.to_kind(kind)).sum(kind).backward();
    let v = vs.variables();
    let mut names: Vec<&String> = v.keys().collect();
    names.sort();
    let grads: Vec<Tensor> = names
        .iter()
        .filter(|n| v[**n].requires_grad())
        .map(|n| v[*n].grad().to_kind(Kind::Double).flatten(0, -1))
        .collect();
    let stats: Vec<Tensor> =
        names.iter().filter(|n| n.contains("running")).map(|n| v[*n].to_kind(Kind::Double).flatten(0, -1)).collect();
    (f.to_kind(Kind::Double), Tensor::cat(&grads, 0), Tensor::cat(&stats, 0))
}

fn relative(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-300)
}

#[test]
fn layouts_agree_in_float64_and_fp32_stays_near_the_float64_reference() {
    let cfg = ResNetConfig {
        arch: Arch::ResNet18,
        widths: [8, 8, 16, 16],
        in_channels: 3,
        cifar_stem: true,
        bn_splits: 4,
        conv_init: ConvInit::Torchvision,
        ..Default::default()
    };
    let x = fixed(&[8, 3, 16, 16], 0.5, 1.7);
    let up = fixed(&[8, 16], 0.25, 1.0);
    let run = |channels_last: bool, kind: Kind| {
        let (vs, net) = network(&ResNetConfig { channels_last, ..cfg.clone() }, kind);
        outputs(&vs, &net, &x, &up)
    };
    // Float64, standard memory with split BN over interleaved groups against channels-last with
    // split BN over reordered blocks: the same sums in other orders. Float64's rounding (2.2e-16)
    // amplified as much as fp32's is below (see the bound of the fp32 check below: 1.6e5-fold at
    // most) stays under 1e-10.
    let (f_std, g_std, s_std) = run(false, Kind::Double);
    let (f_cl, g_cl, s_cl) = run(true, Kind::Double);
    for (what, a, b) in
        [("features", &f_cl, &f_std), ("gradients", &g_cl, &g_std), ("running statistics", &s_cl, &s_std)]
    {
        let e = relative(a, b);
        assert!(e < 1e-10, "float64 {what}: channels-last vs standard {e}");
    }
    // Fp32 in both layouts against the float64 reference: measured 1e-6..1e-5 on AVX-512 and
    // AVX2 kernels alike; 1e-4 is the bound of the fp32 gradient test in src/model/resnet.rs.
    for channels_last in [false, true] {
        let (f, g, s) = run(channels_last, Kind::Float);
        for (what, a, b) in [("features", &f, &f_std), ("gradients", &g, &g_std), ("running statistics", &s, &s_std)] {
            let e = relative(a, b);
            assert!(e < 1e-4, "fp32 {what} (channels-last {channels_last}) off float64 by {e}");
        }
    }
}

#[test]
fn the_network_checks_pass_on_avx2_kernels_too() {
    if std::env::var_os("UNMIX_CHILD").is_some() {
        return;
    }
    let o = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "layouts_agree_in_float64_and_fp32_stays_near_the_float64_reference", "--test-threads=1"])
        .env("UNMIX_CHILD", "1")
        .env("ATEN_CPU_CAPABILITY", "avx2")
        .env("ONEDNN_MAX_CPU_ISA", "AVX2")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "on AVX2 kernels: {out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("1 passed"), "{out}");
}

#[test]
fn augmentations_give_the_same_bytes_on_avx2_and_portable_kernels() {
    use rand::SeedableRng;
    use unmix_data::augment::{
        augment, set_portable_kernels, ColorJitter, GaussianBlur, RandomResizedCrop, ViewRecipe,
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/unmix-data/tests/fixtures/cifar-10-batches-bin");
    let set = unmix_data::cifar::load_cifar10(&root, false).unwrap();
    // Every AVX2-dispatched kernel: resize (crops up and down), saturation and hue (jitter),
    // the blur's box passes.
    let recipe = |size: usize| ViewRecipe {
        crop: Some(RandomResizedCrop { size: (size, size), scale: (0.08, 1.0), ratio: (0.75, 4.0 / 3.0) }),
        hflip_p: 0.5,
        jitter: Some(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }),
        jitter_p: 1.0,
        grayscale_p: 0.2,
        blur: Some(GaussianBlur { sigma: (0.1, 2.0), p: 1.0 }),
        mean: vec![0.5; 3],
        std: vec![0.25; 3],
        ..Default::default()
    };
    let views = |portable: bool| {
        set_portable_kernels(portable);
        let mut out = Vec::new();
        for size in [24, 32, 57] {
            for i in 0..set.len().min(40) {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64 * 31 + size as u64);
                out.push(augment(set.image(i), &recipe(size), &mut rng));
            }
        }
        set_portable_kernels(false);
        out
    };
    let (fast, portable) = (views(false), views(true));
    assert!(unmix_data::augment::avx2_kernels() || !std::arch::is_x86_feature_detected!("avx2"));
    assert_eq!(fast.len(), 60);
    for (k, (a, b)) in fast.iter().zip(&portable).enumerate() {
        assert_eq!(a, b, "view {k} differs between the AVX2 and the portable kernels");
    }
}

#[test]
fn a_run_gives_the_same_losses_with_glibcs_default_allocator_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = root.join("crates/unmix-data/tests/fixtures/fashion-mnist");
    let tmp = tempfile::tempdir().unwrap();
    let losses = |name: &str, defaults: bool| {
        let out = tmp.path().join(name);
        let mut c = Command::new(env!("CARGO_BIN_EXE_unmix"));
        c.current_dir(root).args([
            "pretrain",
            "--config",
            "configs/fmnist-moco-unmix.toml",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        for s in [
            format!("data.root=\"{}\"", fixture.display()),
            "data.limit=128".into(),
            "model.widths=[4, 4, 4, 4]".into(),
            "train.batch_size=32".into(),
            "method.queue=128".into(),
            "train.epochs=1".into(),
            "train.log_every=1".into(),
            "eval.knn_k=10".into(),
        ] {
            c.args(["--set", &s]);
        }
        if defaults {
            c.env("UNMIX_MALLOC_DEFAULTS", "1");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out.join("steps.jsonl")).unwrap()
    };
    let (tuned, plain) = (losses("tuned", false), losses("plain", true));
    assert_eq!(tuned.lines().count(), 4);
    assert_eq!(tuned, plain, "the allocator settings changed the losses");
}
