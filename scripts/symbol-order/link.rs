//! Shared by the build scripts of berthd and the berth CLI (included with `#[path]`): links
//! a binary with its `symbol-order.txt`, made by scripts/symbol-order.sh.
use std::path::Path;

/// Prints the cargo directives for `order` (if it exists), each led by `link_arg` (such as
/// `cargo:rustc-link-arg-bins=`). `BERTH_NO_SYMBOL_ORDER` in the build's environment turns
/// it off.
pub fn symbol_order(order: &Path, link_arg: &str) {
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=BERTH_NO_SYMBOL_ORDER");
    if lld_target() && order.exists() && std::env::var_os("BERTH_NO_SYMBOL_ORDER").is_none() {
        println!("{link_arg}-Wl,--symbol-ordering-file={}", order.display());
        println!("{link_arg}-Wl,--no-warn-symbol-ordering");
    }
}

/// Only lld knows these flags; rustc links x86_64 Linux with its own lld.
pub fn lld_target() -> bool {
    std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu")
}
