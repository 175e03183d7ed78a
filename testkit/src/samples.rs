//! The sample guests under `samples/`, built from source for `wasm32-wasip2`
//! once per test process (cargo makes a second build a no-op). Used by the
//! runtime's, the node's and the end-to-end tests, and the benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding the built `.wasm` files.
pub fn samples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/Cargo.toml");
        let target = match std::env::var_os("SKIFF_SAMPLES_TARGET_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
                PathBuf::from(home).join(".cache/skiff-samples-target")
            }
        };
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-wasip2"))
            .unwrap_or(true);
        assert!(
            installed,
            "the wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`"
        );
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target)
            // Do not let this test's own build settings leak into the guest build.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo to build the samples");
        assert!(status.success(), "building the samples failed: {status}");
        target.join("wasm32-wasip2/release")
    })
}

/// The path of a built sample, e.g. `sample_path("hello")`.
pub fn sample_path(name: &str) -> PathBuf {
    samples_dir().join(format!("{name}.wasm"))
}

/// A built sample's bytes.
pub fn sample(name: &str) -> Vec<u8> {
    let path = sample_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
