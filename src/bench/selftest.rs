//! `unmix selftest --device cuda`: the GPU path in one command (what scripts/gpu-check.sh runs on
//! a lent GPU machine). Each check compares the device with the CPU or with a reference computed
//! on the device, and reports its measure and bound as JSON:
//! - the same training steps (MoCo + Un-Mix, fp32) on the CPU and on the device;
//! - autocast bf16 on the device against fp32;
//! - the split-BN node (the channels-last network's blocked batch norm) against the standard
//!   layout, on the device;
//! - pinned staging: a batch staged through page-locked memory arrives unchanged;
//! - a process group of one process (NCCL on CUDA when built in, Gloo otherwise) doing each
//!   collective.
//!
//! With `--device cpu` every check runs with the CPU on both sides: the dry run of the script.

use crate::build;
use crate::config::Config;
use crate::dist::Dist;
use crate::model::{ResNet, ResNetConfig};
use crate::precision::Precision;
use crate::train::step::Trainer;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use tch::{nn, Device, Kind, Tensor};

fn relative(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_device(Device::Cpu).to_kind(Kind::Double), b.to_device(Device::Cpu).to_kind(Kind::Double));
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-30)
}

fn check(name: &str, measure: f64, bound: f64, extra: Value) -> Value {
    let mut v =
        json!({"check": name, "measure": measure, "bound": bound, "ok": measure.is_finite() && measure <= bound});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}

/// The fmnist MoCo + Un-Mix config shrunk to a quick step, on `device`.
fn tiny(device: &str, precision: Precision) -> Result<Config> {
    crate::bench::model::config(
        "fmnist",
        &[
            format!("device=\"{device}\""),
            "model.widths=[8, 8, 16, 16]".into(),
            "train.batch_size=32".into(),
            "method.queue=128".into(),
            format!("train.precision=\"{}\"", precision.name()),
        ],
    )
}

/// Two training steps from the same state on the same batches; returns the losses and the
/// query encoder's weights after them.
fn two_steps(cfg: &Config, device: Device, state: &[(String, Tensor)], views: &[Tensor]) -> Result<(Vec<f64>, Tensor)> {
    let mut t = Trainer::new(cfg, device, None, 10)?;
    t.load_state(state)?;
    let views: Vec<Tensor> = views.iter().map(|v| v.to_device(device)).collect();
    let mut losses = Vec::new();
    for step in 0..2u64 {
        let loss = t.forward(&views, step, 0)?;
        losses.push(loss.double_value(&[]));
        t.update(&loss, cfg.train.lr, step, 0)?;
    }
    let q: Vec<Tensor> = t
        .method
        .state()
        .into_iter()
        .filter(|(n, _)| n.starts_with("q.") && !n.contains("running") && !n.contains("num_batches"))
        .map(|(_, t)| t.to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1))
        .collect();
    Ok((losses, Tensor::cat(&q, 0)))
}

/// Every check on `device_name`; an error listing the failed ones (with the whole report) when
/// any fails.
pub fn run(device_name: &str) -> Result<Value> {
    let cfg = tiny(device_name, Precision::Fp32)?;
    let device = build::runtime(&cfg)?;
    let mut checks = same_steps_and_autocast(device_name, &cfg, device)?;
    checks.extend(split_bn_node(device)?);
    checks.push(pinned_staging(device)?);
    checks.push(process_group(device)?);
    let failed: Vec<&str> = checks.iter().filter(|c| c["ok"] != true).filter_map(|c| c["check"].as_str()).collect();
    let result = json!({
        "device": format!("{device:?}"),
        "cuda_available": tch::Cuda::is_available(),
        "nccl_built": crate::dist::NCCL_BUILT,
        "checks": checks,
        "failed": failed,
    });
    if !failed.is_empty() {
        bail!("selftest on {device:?} failed: {}\n{result:#}", failed.join("; "));
    }
    Ok(result)
}

/// Checks one and two: the same steps on the CPU and on the device (fp32 on two devices: cuDNN
/// may use TF32 convolutions, ~1e-3 relative; the same device gives 0), then autocast bf16 on the
/// device against fp32, from the same state.
fn same_steps_and_autocast(device_name: &str, cfg: &Config, device: Device) -> Result<Vec<Value>> {
    let cross_bound = if device.is_cuda() { 2e-2 } else { 1e-12 };
    let cpu_cfg = tiny("cpu", Precision::Fp32)?;
    let init = build::method(&cpu_cfg, Device::Cpu, 1).state();
    let x1 = Tensor::randn([32, 1, 28, 28], (Kind::Float, Device::Cpu));
    let x2 = Tensor::randn([32, 1, 28, 28], (Kind::Float, Device::Cpu));
    let views = [x1, x2];
    let (l_cpu, w_cpu) = two_steps(&cpu_cfg, Device::Cpu, &init, &views)?;
    let (l_dev, w_dev) = two_steps(cfg, device, &init, &views)?;
    let dl = l_cpu.iter().zip(&l_dev).map(|(a, b)| ((a - b) / a).abs()).fold(0.0, f64::max);
    let mut checks =
        vec![check("same steps: loss, cpu vs device", dl, cross_bound, json!({"cpu": l_cpu, "device": l_dev}))];
    checks.push(check(
        "same steps: query weights after 2 steps, cpu vs device",
        relative(&w_dev, &w_cpu),
        cross_bound,
        json!({}),
    ));
    let bf16 = tiny(device_name, Precision::Bf16)?;
    let (l_bf, _) = two_steps(&bf16, device, &init, &views)?;
    let d = ((l_bf[0] - l_dev[0]) / l_dev[0]).abs();
    checks.push(check("autocast bf16 vs fp32: first loss", d, 5e-2, json!({"fp32": l_dev[0], "bf16": l_bf[0]})));
    Ok(checks)
}

/// Check three, the split-BN node: channels-last (blocked batch norm in one node) against the standard
/// layout with the same weights, training-mode features and a gradient, on the device.
fn split_bn_node(device: Device) -> Result<Vec<Value>> {
    let net_cfg =
        ResNetConfig { widths: [8, 8, 16, 16], in_channels: 3, cifar_stem: true, bn_splits: 4, ..Default::default() };
    let build_net = |channels_last: bool| {
        let vs = nn::VarStore::new(device);
        let net = ResNet::new(&vs.root(), &ResNetConfig { channels_last, ..net_cfg.clone() });
        (vs, net)
    };
    let ((vs_a, a), (mut vs_b, b)) = (build_net(false), build_net(true));
    vs_b.copy(&vs_a)?;
    let x = Tensor::randn([16, 3, 16, 16], (Kind::Float, device));
    let (fa, fb) = (a.forward_t(&x, true), b.forward_t(&x, true));
    fa.sum(Kind::Float).backward();
    fb.sum(Kind::Float).backward();
    let g = |vs: &nn::VarStore| vs.variables()["layer1.0.bn1.weight"].grad();
    let same_device = if device.is_cuda() { 1e-3 } else { 1e-4 };
    Ok(vec![
        check("split-BN node: features, blocked vs standard", relative(&fb, &fa), same_device, json!({})),
        check(
            "split-BN node: a BN weight's gradient, blocked vs standard",
            relative(&g(&vs_b), &g(&vs_a)),
            same_device * 10.0,
            json!({}),
        ),
    ])
}

/// Check four, pinned staging: a batch staged through page-locked memory arrives unchanged.
fn pinned_staging(device: Device) -> Result<Value> {
    let host: Vec<f32> = (0..2 * 3 * 8 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
    let batch = unmix_data::loader::ViewBatch { channels: 3, height: 8, width: 8, data: host.clone() };
    let staged = crate::data::to_tensor(&batch, device);
    let plain = Tensor::from_slice(&host).view([2, 3, 8, 8]).to_device(device);
    let exact = bool::try_from(staged.eq_tensor(&plain).all())?;
    Ok(check("pinned staging: batch arrives unchanged", if exact { 0.0 } else { 1.0 }, 0.0, json!({})))
}

/// Check five: a process group of one process doing each collective.
fn process_group(device: Device) -> Result<Value> {
    let d = Dist::single(device)?;
    let t = Tensor::arange(6, (Kind::Float, device)).view([2, 3]);
    let sum = t.copy();
    d.all_reduce_sum(&sum)?;
    let gathered = d.all_gather(&t)?;
    let b = t.copy();
    d.broadcast(&b, 0)?;
    d.barrier()?;
    let m = [relative(&sum, &t), relative(&gathered, &t), relative(&b, &t)].into_iter().fold(0.0, f64::max);
    Ok(check("process group of 1: all-reduce, all-gather, broadcast, barrier", m, 0.0, json!({"backend": d.backend})))
}
