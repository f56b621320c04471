// Embed the libtorch location (from the project's virtual environment, found by torch-sys) as an
// rpath, so the `unmix` binary runs without LD_LIBRARY_PATH; compile the small C++ shim over
// libtorch's autocast state (csrc/autocast.cpp) against the same libtorch's headers.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/memory_format.cpp");
    println!("cargo:rerun-if-changed=csrc/split_bn.cpp");
    println!("cargo:rerun-if-changed=csrc/profile.cpp");
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
    println!("cargo:rerun-if-changed=csrc/dist.h");
    println!("cargo:rerun-if-changed=csrc/error.h");
    println!("cargo:rerun-if-changed=csrc/dist_nccl.cpp");
    println!("cargo:rerun-if-env-changed=UNMIX_NCCL");
    println!("cargo:rustc-check-cfg=cfg(unmix_nccl)");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not report where libtorch is (DEP_TCH_LIBTORCH_LIB); run scripts/setup.sh first");
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let root = std::path::Path::new(&lib).parent().expect("libtorch lib folder has a parent").to_path_buf();
    let include = root.join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    // Both shims compile against the same libtorch headers with the same ABI.
    let shim = |file: &str| {
        let mut b = cc::Build::new();
        b.cpp(true)
            .file(file)
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .flag("-std=c++17")
            .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
            .warnings(false);
        b
    };
    shim("csrc/autocast.cpp")
        .file("csrc/memory_format.cpp")
        .file("csrc/split_bn.cpp")
        .file("csrc/profile.cpp")
        .compile("unmix_autocast");
    // c10d (TCPStore + Gloo): the wheel ships c10d's headers but not gloo's; Debian's libgloo-dev
    // provides those (scripts/setup.sh installs it).
    if !std::path::Path::new("/usr/include/gloo/algorithm.h").exists() {
        panic!("gloo headers not found (/usr/include/gloo): run scripts/setup.sh, which installs Debian's libgloo-dev");
    }
    shim("csrc/dist.cpp").define("USE_C10D_GLOO", None).compile("unmix_dist");
    nccl(&lib, &root, shim);
}

/// The NCCL process group (csrc/dist_nccl.cpp) for CUDA training, built only when libtorch is a
/// CUDA build and the headers ProcessGroupNCCL.hpp needs are in the torch wheel's environment:
/// site-packages/nvidia/cu13/include with cuda_runtime_api.h (wheel nvidia-cuda-runtime, a torch
/// dependency), crt/host_config.h (nvidia-cuda-crt) and nv/target (nvidia-cuda-cccl), the last two
/// installed by scripts/setup.sh; and site-packages/nvidia/nccl/include/nccl.h (nvidia-nccl-cu13,
/// a torch dependency). Then it sets the cfg `unmix_nccl` (src/dist.rs uses NCCL for CUDA runs) and
/// links libtorch_cuda and libc10_cuda. Without them unmix builds with Gloo only, which also
/// carries CUDA tensors (through host memory). UNMIX_NCCL=0 skips it; UNMIX_NCCL=1 makes missing
/// headers an error.
fn nccl(lib: &str, root: &std::path::Path, shim: impl Fn(&str) -> cc::Build) {
    use std::path::Path;
    let mode = std::env::var("UNMIX_NCCL").unwrap_or_default();
    if mode == "0" {
        return;
    }
    let missing = |why: String| {
        if mode == "1" {
            panic!("UNMIX_NCCL=1 but the NCCL process group cannot be built: {why}; run scripts/setup.sh");
        }
        println!("cargo:warning=building without NCCL (multi-process CUDA runs use Gloo): {why}; scripts/setup.sh installs the headers");
    };
    if !Path::new(lib).join("libtorch_cuda.so").exists() {
        // A CPU-only libtorch: nothing to do, and nothing to warn about.
        if mode == "1" {
            panic!("UNMIX_NCCL=1 but libtorch in {lib} is not a CUDA build (no libtorch_cuda.so)");
        }
        return;
    }
    // The wheel's folder through the .venv/libtorch link: site-packages is the torch folder's parent.
    let site = match std::fs::canonicalize(root) {
        Ok(torch) => torch.parent().map(Path::to_path_buf).unwrap_or(torch),
        Err(e) => return missing(format!("cannot resolve {}: {e}", root.display())),
    };
    let cuda = site.join("nvidia/cu13/include");
    let nccl = site.join("nvidia/nccl/include");
    for (dir, file, wheel) in [
        (&cuda, "cuda_runtime_api.h", "nvidia-cuda-runtime"),
        (&cuda, "crt/host_config.h", "nvidia-cuda-crt"),
        (&cuda, "nv/target", "nvidia-cuda-cccl"),
        (&nccl, "nccl.h", "nvidia-nccl-cu13"),
    ] {
        let path = dir.join(file);
        if !path.exists() {
            // Build again once it appears: watch the nearest folder that exists (a missing path
            // would make every build rerun this script).
            if let Some(up) = path.ancestors().skip(1).find(|p| p.is_dir()) {
                println!("cargo:rerun-if-changed={}", up.display());
            }
            return missing(format!("{} not found (wheel {wheel})", path.display()));
        }
    }
    shim("csrc/dist_nccl.cpp").define("USE_C10D_NCCL", None).include(&cuda).include(&nccl).compile("unmix_dist_nccl");
    println!("cargo:rustc-link-search=native={lib}");
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-cfg=unmix_nccl");
}
