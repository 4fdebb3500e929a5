//! The `berth` binary: all logic lives in the library.

fn main() {
    std::process::exit(berth_cli::main_entry());
}
