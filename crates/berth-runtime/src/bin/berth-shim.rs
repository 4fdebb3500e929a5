//! `berth-shim`: the per-container supervisor. All logic is in `berth_runtime::shim`.

fn main() {
    std::process::exit(berth_runtime::shim::shim_main(
        std::env::args_os().collect(),
    ));
}
