//! Mixed precision: `train.precision = "bf16"` runs the forward pass under libtorch's autocast
//! (convolutions and matrix products in bfloat16, fp32 master weights and optimizer state, batch
//! norm statistics kept in fp32), on CPU through a small C++ shim (tch only exposes CUDA's
//! autocast) and on CUDA. Losses, softmax and Sinkhorn run in fp32 inside [`fp32`].

use tch::Device;

extern "C" {
    fn unmix_autocast_enter(device: i32, enabled: i32, dtype: i32, prev_enabled: *mut i32, prev_dtype: *mut i32)
        -> i32;
    fn unmix_autocast_exit(device: i32, prev_enabled: i32, prev_dtype: i32) -> i32;
    fn unmix_autocast_is_enabled(device: i32) -> i32;
}

/// Compute precision of the forward pass (`train.precision`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
    /// Float64 weights, activations and losses: slow, for the equivalence tests (one process
    /// against two, one layout against another), whose outcome must not depend on a CPU's fp32
    /// summation order.
    Fp64,
}

impl Precision {
    /// The name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp64 => "fp64",
        }
    }

    pub fn parse(s: &str) -> Option<Precision> {
        match s {
            "fp32" => Some(Precision::Fp32),
            "bf16" => Some(Precision::Bf16),
            "fp64" => Some(Precision::Fp64),
            _ => None,
        }
    }
}

/// Whether this CPU runs bf16 matrix products natively (x86: AVX512-BF16 or AMX-BF16, and
/// oneDNN not held below them by ONEDNN_MAX_CPU_ISA). Without it libtorch emulates bf16, slower
/// than fp32.
pub fn cpu_has_native_bf16() -> bool {
    let flags = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("flags"))
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        })
        .unwrap_or_default();
    let has = |f: &str| flags.iter().any(|x| x == f);
    let capped = std::env::var("ONEDNN_MAX_CPU_ISA").ok().is_some_and(|isa| {
        let isa = isa.to_ascii_uppercase();
        !(isa == "ALL" || isa == "DEFAULT" || isa.contains("BF16") || isa.contains("AMX"))
    });
    (has("avx512_bf16") || has("amx_bf16")) && !capped
}

fn device_code(d: Device) -> i32 {
    if d.is_cuda() {
        1
    } else {
        0
    }
}

/// Autocast for one device type while alive (RAII); restores the previous state on drop.
pub struct Autocast {
    device: i32,
    prev_enabled: i32,
    prev_dtype: i32,
}

impl Autocast {
    /// Enters autocast (`enabled`) with bfloat16 as the lower precision on `device`'s type.
    pub fn new(device: Device, enabled: bool) -> Autocast {
        let d = device_code(device);
        let (mut pe, mut pd) = (0, 0);
        // SAFETY: the shim writes the previous state into the two locals and touches nothing else.
        let rc = unsafe { unmix_autocast_enter(d, enabled as i32, 0, &mut pe, &mut pd) };
        assert_eq!(rc, 0, "libtorch refused to set autocast for {device:?}");
        Autocast { device: d, prev_enabled: pe, prev_dtype: pd }
    }

    /// Whether autocast is on for `device`'s type.
    pub fn is_enabled(device: Device) -> bool {
        // SAFETY: reads libtorch's thread-local autocast flag; no pointers.
        unsafe { unmix_autocast_is_enabled(device_code(device)) == 1 }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: restores the thread-local state saved by `new` on this thread; no pointers.
        unsafe {
            unmix_autocast_exit(self.device, self.prev_enabled, self.prev_dtype);
        }
    }
}

fn cuda_available() -> bool {
    static CUDA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CUDA.get_or_init(tch::Cuda::is_available)
}

/// Autocast off on every device type while alive: the scope of a loss computation, whose inputs
/// the loss casts to fp32.
pub struct Fp32Scope {
    _cpu: Autocast,
    _cuda: Option<Autocast>,
}

impl Fp32Scope {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Fp32Scope {
        Fp32Scope {
            _cpu: Autocast::new(Device::Cpu, false),
            _cuda: cuda_available().then(|| Autocast::new(Device::Cuda(0), false)),
        }
    }
}

/// Runs `f` with autocast off on every device type (losses, softmax, Sinkhorn in fp32); the
/// caller casts its inputs to fp32.
pub fn fp32<T>(f: impl FnOnce() -> T) -> T {
    let _scope = Fp32Scope::new();
    f()
}

/// Runs the forward pass `f` at `precision` on `device`.
pub fn forward<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    match precision {
        Precision::Fp32 | Precision::Fp64 => f(),
        Precision::Bf16 => {
            let _g = Autocast::new(device, true);
            f()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn cpu_autocast_runs_matmul_in_bf16_and_fp32_scope_turns_it_off() {
        let a = Tensor::randn([8, 16], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
        assert!(!Autocast::is_enabled(Device::Cpu));
        let (inside, in_fp32) = forward(Precision::Bf16, Device::Cpu, || {
            assert!(Autocast::is_enabled(Device::Cpu));
            (a.mm(&b).kind(), fp32(|| a.mm(&b).kind()))
        });
        assert_eq!(inside, Kind::BFloat16);
        assert_eq!(in_fp32, Kind::Float);
        // Restored on exit; nesting-safe.
        assert!(!Autocast::is_enabled(Device::Cpu));
        assert_eq!(a.mm(&b).kind(), Kind::Float);
        assert_eq!(forward(Precision::Fp32, Device::Cpu, || a.mm(&b).kind()), Kind::Float);
        // The bf16 product is close to the fp32 one (8 mantissa bits).
        let exact = a.mm(&b);
        let low = forward(Precision::Bf16, Device::Cpu, || a.mm(&b)).to_kind(Kind::Float);
        let rel = ((low - &exact).abs().max() / exact.abs().max()).double_value(&[]);
        assert!(rel < 0.05, "{rel}");
    }
}
