// Embed the libtorch location (from the project's virtual environment, found by torch-sys) as an
// rpath, so the `unmix` binary runs without LD_LIBRARY_PATH; compile the small C++ shim over
// libtorch's autocast state (csrc/autocast.cpp) against the same libtorch's headers.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
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
    shim("csrc/autocast.cpp").compile("unmix_autocast");
    // c10d (TCPStore + Gloo): the wheel ships c10d's headers but not gloo's; Debian's libgloo-dev
    // provides those (scripts/setup.sh installs it).
    if !std::path::Path::new("/usr/include/gloo/algorithm.h").exists() {
        panic!("gloo headers not found (/usr/include/gloo): run scripts/setup.sh, which installs Debian's libgloo-dev");
    }
    shim("csrc/dist.cpp").define("USE_C10D_GLOO", None).compile("unmix_dist");
}
