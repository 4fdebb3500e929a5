//! Links the `berth` binary as a position-dependent executable (`-no-pie`), with its hot
//! functions laid out together.
//!
//! The CLI is a short-lived process whose start-up is on the critical path of every
//! command (issue #3 measures `berth exec C true` against `crun exec`). As a PIE, the
//! 10 MB binary carries about 16,000 relative relocations that the dynamic loader applies
//! at every start, reading 380 KB of `.rela.dyn` and dirtying 300 KB of `.data.rel.ro`:
//! measured here 1.7 to 2.2 ms of CPU for `berth --version` against 1.3 to 1.6 ms
//! without (`perf stat -r 200`), 70 fewer page faults. The objects stay position
//! independent (only the final link changes), libraries and the stack keep their ASLR;
//! what is given up is the randomised base of the CLI's own text, as in Go-built docker
//! CLIs. The daemon and the shim keep the default PIE link.
//!
//! `symbol-order.txt` (made by `scripts/symbol-order.sh`, as berthd's; see
//! crates/berthd/build.rs) puts the functions a CLI call runs first, in the order they
//! first ran: a `run --rm` then faults in a few dozen pages of code instead of 61 page
//! cache windows scattered over the 6 MiB of `.text` (4.3 MiB of it mapped), and its exit
//! has that much less to unmap. A stale list only costs time.
#[path = "../../scripts/symbol-order/link.rs"]
mod link;

fn main() {
    println!("cargo:rustc-link-arg-bin=berth=-no-pie");
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("symbol-order.txt");
    link::symbol_order(&order, "cargo:rustc-link-arg-bin=berth=");
}
