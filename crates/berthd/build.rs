//! Link berthd's hot code together, and pack its relocations.
//!
//! berthd's idle memory was mostly its own machine code mapped from the page cache. This
//! kernel maps a whole page-cache folio (or a 64 KiB fault-around window) on each fault,
//! so one executed function makes its neighbours resident too. Left to itself the linker
//! scatters the few thousand functions a daemon runs over the whole 17 MiB `.text`, and
//! 13.2 MiB of it ended up resident. `symbol-order.txt` lists the functions that ran under
//! a representative workload (made by `scripts/symbol-order.sh`); lld places them first,
//! in that order, so they share pages: 6.4 MiB resident after the same runs.
//!
//! The names are v0-mangled (`.cargo/config.toml`), which carry no per-function hash, so
//! most of the list stays valid as the code changes: a function it does not name is laid
//! out as before, a name it does not find is skipped, and a stale list only costs memory.
//! The exception is the functions ThinLTO promotes (`.llvm.<hash>`, about 700 of the list):
//! the hash changes with any edit to their crate, so the list needs a refresh after edits
//! to the daemon's crates. The names also carry each crate's disambiguator, which depends
//! on the unified feature set: the list matches `cargo build --release --workspace` (as
//! `scripts/setup.sh` and `bench/` build).
use std::path::Path;

#[path = "../../scripts/symbol-order/link.rs"]
mod link;

fn main() {
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
    link::symbol_order(&order, "cargo:rustc-link-arg-bins=");
    let lld_target = link::lld_target();
    // Packed relative relocations (DT_RELR): a PIE's ~35,000 relative relocations as a
    // few KiB of bitmaps instead of 850 KiB of `.rela.dyn`, which the loader reads at every
    // start and which then stays resident. Only a glibc that knows DT_RELR (2.36+) can load
    // such a binary, so it is used only when the build host's glibc says it does.
    if lld_target && glibc_knows_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the glibc berthd links against defines the `GLIBC_ABI_DT_RELR` version, which
/// marks a loader that applies DT_RELR.
fn glibc_knows_relr() -> bool {
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/lib64/libc.so.6",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .is_some_and(|libc| {
        libc.windows(b"GLIBC_ABI_DT_RELR".len())
            .any(|w| w == b"GLIBC_ABI_DT_RELR")
    })
}
