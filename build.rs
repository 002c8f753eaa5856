//! Lets the `likeness` binary find libtorch by itself, and keeps CUDA linked.
//!
//! torch-sys (`links = "tch"`) exports the directory of the libtorch it linked as
//! `DEP_TCH_LIBTORCH_LIB`. We bake that directory into the rpath so that no
//! `LD_LIBRARY_PATH` is needed, and we link `libtorch_cuda` with `--no-as-needed`:
//! nothing references its symbols directly, so the default `--as-needed` would drop it
//! and `tch::Cuda::is_available()` would then be false even on a GPU machine.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(libtorch_lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=torch-sys did not report its libtorch directory; no rpath set");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch_lib}");
    let lib_dir = Path::new(&libtorch_lib);
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-L{libtorch_lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
