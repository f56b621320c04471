//! Multi-process data parallelism on libtorch's own c10d engine through a thin C++ binding
//! (csrc/dist.cpp): a TCPStore rendezvous from the variables torchrun (or SLURM scripts) set, a
//! process group (Gloo on CPU, NCCL on CUDA), and the collectives the training loop and the
//! methods need.
//!
//! NCCL (csrc/dist_nccl.cpp) is compiled in when build.rs finds the CUDA and NCCL headers (the cfg
//! `unmix_nccl`; scripts/setup.sh installs the two header wheels it needs). A CUDA run without it
//! falls back to Gloo, which also carries CUDA tensors (staged through host memory, slower), and
//! says so. `UNMIX_DIST_BACKEND=gloo` or `=nccl` overrides the choice.
//!
//! Launch: `torchrun --nproc_per_node=N --no-python unmix pretrain ...`, or set MASTER_ADDR,
//! MASTER_PORT, RANK and WORLD_SIZE yourself. Every collective times out after
//! `UNMIX_DIST_TIMEOUT` seconds (default 1800), so a rank that dies makes the others stop with an
//! error instead of hanging.

use crate::ffi::{error_buffer, message, ERROR_LEN};
use anyhow::{anyhow, bail, Context, Result};
use std::ffi::{c_char, c_int, c_void, CString};
use tch::{Device, Kind, Tensor};

extern "C" {
    fn unmix_dist_new(
        addr: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        timeout_ms: c_int,
        err: *mut c_char,
        len: c_int,
    ) -> *mut c_void;
    #[cfg(unmix_nccl)]
    fn unmix_dist_new_nccl(
        addr: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        device: c_int,
        timeout_ms: c_int,
        err: *mut c_char,
        len: c_int,
    ) -> *mut c_void;
    fn unmix_dist_free(g: *mut c_void);
    fn unmix_dist_all_reduce_sum(g: *mut c_void, t: *mut c_void, err: *mut c_char, len: c_int) -> c_int;
    fn unmix_dist_all_gather(
        g: *mut c_void,
        input: *mut c_void,
        out: *mut c_void,
        err: *mut c_char,
        len: c_int,
    ) -> c_int;
    fn unmix_dist_broadcast(g: *mut c_void, t: *mut c_void, root: c_int, err: *mut c_char, len: c_int) -> c_int;
    fn unmix_dist_barrier(g: *mut c_void, err: *mut c_char, len: c_int) -> c_int;
}

/// This process's place in a multi-process run and its process group.
pub struct Dist {
    group: *mut c_void,
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    /// "gloo" or "nccl".
    pub backend: &'static str,
}

/// Whether this build has the NCCL process group (see the module docs).
pub const NCCL_BUILT: bool = cfg!(unmix_nccl);

/// What to add to a failed join: NCCL's one-GPU-per-process rule where this process's GPU is not
/// its LOCAL_RANK's.
fn device_hint(device: Device, backend: &str, local_rank: usize) -> String {
    match device {
        Device::Cuda(i) if backend == "nccl" && i != local_rank => {
            format!(" (NCCL needs one GPU per process: this is LOCAL_RANK {local_rank} on cuda:{i}; usually cuda:LOCAL_RANK)")
        }
        _ => String::new(),
    }
}

/// The process group for tensors on `device`: NCCL for CUDA when built in, Gloo otherwise, unless
/// UNMIX_DIST_BACKEND says which.
fn choose_backend(device: Device) -> Result<&'static str> {
    match env("UNMIX_DIST_BACKEND").as_deref() {
        None | Some("auto") => Ok(if device.is_cuda() && NCCL_BUILT { "nccl" } else { "gloo" }),
        Some("gloo") => Ok("gloo"),
        Some("nccl") if !device.is_cuda() => bail!("UNMIX_DIST_BACKEND = nccl needs a CUDA device (device = \"cuda\" or \"cuda:N\")"),
        Some("nccl") if !NCCL_BUILT => bail!(
            "UNMIX_DIST_BACKEND = nccl but this unmix was built without NCCL (the CUDA headers were missing): run scripts/setup.sh and rebuild"
        ),
        Some("nccl") => Ok("nccl"),
        Some(other) => bail!("UNMIX_DIST_BACKEND = \"{other}\": use gloo, nccl or auto"),
    }
}

// SAFETY: `group` points to a c10d ProcessGroup owned by this value alone (freed once, in Drop).
// c10d's process groups are thread-safe: their collectives may be called from any thread, and
// Gloo and NCCL serialize the work each group enqueues. The Arc<Dist> the methods share only
// hands the pointer to those collectives; no Rust code reads or writes through it.
unsafe impl Send for Dist {}
// SAFETY: as for Send: every use of `group` from `&Dist` is a call into c10d's thread-safe API.
unsafe impl Sync for Dist {}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.parse().map_err(|_| anyhow!("environment variable {name} = \"{v}\" is not a number"))
}

fn tensor_ptr(t: &Tensor) -> *mut c_void {
    t.as_ptr() as *mut c_void
}

impl Dist {
    /// The run's Gloo process group when WORLD_SIZE > 1 (None for a single process). Errors name
    /// the missing or malformed variable.
    pub fn from_env() -> Result<Option<Dist>> {
        Self::from_env_on(Device::Cpu)
    }

    /// As `from_env`, for training on `device`: on CUDA the group is NCCL (when built in), bound to
    /// that device, which each process on a node must have to itself (cuda:LOCAL_RANK).
    pub fn from_env_on(device: Device) -> Result<Option<Dist>> {
        let world: usize = match env("WORLD_SIZE") {
            None => return Ok(None),
            Some(w) => parse("WORLD_SIZE", &w)?,
        };
        if world <= 1 {
            return Ok(None);
        }
        let need = |n: &str| {
            env(n).ok_or_else(|| {
                anyhow!("WORLD_SIZE = {world} but {n} is not set (torchrun sets MASTER_ADDR, MASTER_PORT, RANK)")
            })
        };
        let rank: usize = parse("RANK", &need("RANK")?)?;
        if rank >= world {
            bail!("RANK = {rank} must be below WORLD_SIZE = {world}");
        }
        let addr = need("MASTER_ADDR")?;
        let port: u16 = parse("MASTER_PORT", &need("MASTER_PORT")?)?;
        let local_rank = env("LOCAL_RANK").map(|v| parse("LOCAL_RANK", &v)).transpose()?.unwrap_or(rank);
        let timeout: f64 =
            env("UNMIX_DIST_TIMEOUT").map(|v| parse("UNMIX_DIST_TIMEOUT", &v)).transpose()?.unwrap_or(1800.0);
        Self::connect(device, &addr, port, rank, world, local_rank, timeout).map(Some)
    }

    /// A group of this one process (rank 0 of 1) on `device`'s backend, over loopback: for checking
    /// that the collectives work (`unmix selftest`), not for training.
    pub fn single(device: Device) -> Result<Dist> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .context("no free port on loopback")?;
        Self::connect(device, "127.0.0.1", port, 0, 1, 0, 60.0)
    }

    #[allow(clippy::too_many_arguments)]
    fn connect(
        device: Device,
        addr: &str,
        port: u16,
        rank: usize,
        world: usize,
        local_rank: usize,
        timeout: f64,
    ) -> Result<Dist> {
        let backend = choose_backend(device)?;
        if device.is_cuda() && backend == "gloo" && rank == 0 && env("UNMIX_DIST_BACKEND").is_none() {
            eprintln!("note: this unmix was built without NCCL, so the {world} CUDA processes use Gloo (through host memory, slower); run scripts/setup.sh and rebuild for NCCL");
        }
        let c_addr = CString::new(addr).context("MASTER_ADDR contains a NUL byte")?;
        let timeout_ms = (timeout * 1000.0) as c_int;
        let mut err = error_buffer();
        let len = ERROR_LEN as c_int;
        // SAFETY (both calls): `c_addr` is a NUL-terminated string alive for the call and `err` a
        // buffer of `len` bytes; the shim returns an owned group or null with a message in `err`.
        let group = match backend {
            #[cfg(unmix_nccl)]
            "nccl" => {
                let Device::Cuda(index) = device else { unreachable!("choose_backend gives nccl for CUDA only") };
                unsafe {
                    unmix_dist_new_nccl(
                        c_addr.as_ptr(),
                        port as c_int,
                        rank as c_int,
                        world as c_int,
                        index as c_int,
                        timeout_ms,
                        err.as_mut_ptr(),
                        len,
                    )
                }
            }
            _ => unsafe {
                unmix_dist_new(
                    c_addr.as_ptr(),
                    port as c_int,
                    rank as c_int,
                    world as c_int,
                    timeout_ms,
                    err.as_mut_ptr(),
                    len,
                )
            },
        };
        if group.is_null() {
            bail!(
                "rank {rank}: cannot join the {backend} process group at {addr}:{port} (world {world}): {}{}",
                message(&err),
                device_hint(device, backend, local_rank)
            );
        }
        Ok(Dist { group, rank, world, local_rank, backend })
    }

    fn check(&self, what: &str, rc: c_int, err: &[c_char]) -> Result<()> {
        if rc == 0 {
            return Ok(());
        }
        bail!(
            "rank {}: {what} across {} processes failed: {} (another rank probably stopped; see its output)",
            self.rank,
            self.world,
            message(err)
        )
    }

    /// In-place sum over ranks.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        let mut err = error_buffer();
        // SAFETY: `group` is live (owned by self), `t` a live tensor for the call, `err` ERROR_LEN bytes.
        let rc = unsafe { unmix_dist_all_reduce_sum(self.group, tensor_ptr(t), err.as_mut_ptr(), ERROR_LEN as c_int) };
        self.check("all-reduce", rc, &err)
    }

    /// The inputs (n, ...) of every rank stacked in rank order: (world * n, ...).
    pub fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.contiguous();
        let mut size = t.size();
        size[0] *= self.world as i64;
        let out = Tensor::empty(&size, (t.kind(), t.device()));
        let mut err = error_buffer();
        // SAFETY: as in `all_reduce_sum`; `out` is a live tensor of world x the input's rows.
        let rc = unsafe {
            unmix_dist_all_gather(self.group, tensor_ptr(&t), tensor_ptr(&out), err.as_mut_ptr(), ERROR_LEN as c_int)
        };
        self.check("all-gather", rc, &err)?;
        Ok(out)
    }

    /// The global batch from the ranks' shards when rank r holds positions r, r + W, r + 2W, ...
    /// (the interleaved sharding of the loader): all-gather, then back to global order.
    pub fn all_gather_interleaved(&self, t: &Tensor) -> Result<Tensor> {
        let g = self.all_gather(t)?;
        let n = t.size()[0];
        let mut rest = t.size();
        rest.remove(0);
        // (W, n, ...) -> (n, W, ...) -> (n * W, ...): row j * W + r is rank r's row j.
        let mut shape = vec![self.world as i64, n];
        shape.extend(&rest);
        let mut flat = vec![n * self.world as i64];
        flat.extend(&rest);
        Ok(g.view(shape.as_slice()).transpose(0, 1).contiguous().view(flat.as_slice()))
    }

    /// The global batch of per-process rows `local` (interleaved sharding) in which this process's
    /// rows are `local` itself (gradients flow to them) and the other processes' rows are constants.
    /// A loss over the whole global batch built from these, times the number of processes, has
    /// the single-process gradient once the training loop averages gradients over processes.
    pub fn gather_with_local_grad(&self, local: &Tensor) -> Result<Tensor> {
        let all = self.all_gather_interleaved(&local.detach())?;
        let n = all.size()[0];
        let idx = Tensor::arange_start_step(self.rank as i64, n, self.world as i64, (Kind::Int64, local.device()));
        Ok(all.index_put(&[Some(idx)], local, false))
    }

    /// This rank's rows of a global batch under the interleaved sharding.
    pub fn shard_of(&self, global: &Tensor) -> Tensor {
        let n = global.size()[0];
        let idx = Tensor::arange_start_step(self.rank as i64, n, self.world as i64, (Kind::Int64, global.device()));
        global.index_select(0, &idx)
    }

    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        let mut err = error_buffer();
        // SAFETY: as in `all_reduce_sum`.
        let rc = unsafe {
            unmix_dist_broadcast(self.group, tensor_ptr(t), root as c_int, err.as_mut_ptr(), ERROR_LEN as c_int)
        };
        self.check("broadcast", rc, &err)
    }

    pub fn barrier(&self) -> Result<()> {
        let mut err = error_buffer();
        // SAFETY: `group` is live (owned by self); `err` is ERROR_LEN bytes.
        let rc = unsafe { unmix_dist_barrier(self.group, err.as_mut_ptr(), ERROR_LEN as c_int) };
        self.check("barrier", rc, &err)
    }

    /// Averages (or, with `sum`, adds) the gradients of `params` over ranks in one flat bucket
    /// (one all-reduce per step).
    pub fn reduce_gradients(&self, params: &[Tensor], sum: bool) -> Result<()> {
        let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return Ok(());
        }
        let flat = Tensor::cat(&grads.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(), 0);
        self.all_reduce_sum(&flat)?;
        let flat = if sum { flat } else { flat / self.world as f64 };
        tch::no_grad(|| {
            let mut at = 0i64;
            for g in &grads {
                let n = g.numel() as i64;
                g.shallow_clone().copy_(&flat.narrow(0, at, n).view_as(g));
                at += n;
            }
        });
        Ok(())
    }

    /// Makes every rank's tensors equal to rank 0's (initial weights and buffers).
    pub fn broadcast_all(&self, tensors: &[Tensor]) -> Result<()> {
        tch::no_grad(|| tensors.iter().try_for_each(|t| self.broadcast(t, 0)))
    }
}

/// Whether the rows gathered from other processes carry gradient back to this process's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grad {
    /// Constants (keys, codes, anything computed without gradient).
    None,
    /// This process's rows keep their gradient, the others' are constants (SimCLR's negatives).
    Local,
}

/// The global batch of per-process rows `local` (interleaved sharding: rank r holds positions r,
/// r + W, ...), for every method whose loss spans processes; with one process, `local` itself.
/// With [`Grad::Local`] a loss over the whole global batch, computed identically by every process,
/// has the single-process gradient once gradients are summed over processes (a method's
/// `global_loss`).
pub fn global_batch(dist: Option<&Dist>, local: &Tensor, grad: Grad) -> Result<Tensor> {
    match (dist, grad) {
        (None, Grad::None) => Ok(local.detach()),
        (None, Grad::Local) => Ok(local.shallow_clone()),
        (Some(d), Grad::None) => d.all_gather_interleaved(&local.detach()),
        (Some(d), Grad::Local) => d.gather_with_local_grad(local),
    }
}

impl Drop for Dist {
    fn drop(&mut self) {
        // SAFETY: the group was created for this value and is freed exactly once, here.
        unsafe { unmix_dist_free(self.group) }
    }
}
