//! Builds `preload/hook.rs`, the preload library of pre-started runtime processes (see
//! `src/preload.rs`), with the same rustc and no crates, into `$OUT_DIR`, where the shim
//! embeds it. It only means something for glibc on Linux (it stands in for glibc's
//! `__libc_start_main`); elsewhere, or if the build fails, an empty file is embedded and
//! the shim starts runtimes the ordinary way.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("preload/hook.rs");
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("libberth_preload.so");
    let _ = std::fs::remove_file(&out);
    let target = std::env::var("TARGET").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let status = Command::new(rustc)
            .args([
                "--edition",
                "2021",
                "--crate-type",
                "cdylib",
                "--crate-name",
            ])
            .arg("berth_preload")
            .args([
                "-C",
                "panic=abort",
                "-C",
                "opt-level=2",
                "-C",
                "strip=symbols",
            ])
            .args(["--target", &target, "-o"])
            .arg(&out)
            .arg(&src)
            .status();
        match status {
            Ok(s) if s.success() => return,
            Ok(s) => println!(
                "cargo:warning=preload library not built ({s}): runtimes start the ordinary way"
            ),
            Err(e) => println!(
                "cargo:warning=preload library not built ({e}): runtimes start the ordinary way"
            ),
        }
    }
    std::fs::write(&out, b"").expect("write empty preload library");
}
