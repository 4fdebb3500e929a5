//! berth-cli: docker's command line over the Engine API.
//!
//! `main.rs` only calls [`main_entry`]. This module parses the command line, maps clap's
//! errors onto docker's messages and exit codes (unknown flag: 125, missing argument: 1),
//! builds one single-threaded tokio runtime (the CLI does one thing at a time, and starting
//! worker threads costs more than `berth run --rm busybox true` itself), connects and
//! negotiates the API version, and dispatches to the `commands` modules.

pub mod cli;
pub mod commands;
pub mod compose;
pub mod error;
pub mod format;
pub mod opts;
pub mod stdio;

use clap::Parser;

use cli::{Cli, Cmd};
use error::CliError;

/// The program name used in messages where docker prints `docker`.
pub const PROG: &str = "berth";

/// Run the CLI with the process arguments; returns the exit status.
pub fn main_entry() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    run_args(args)
}

/// Commands whose failures print `berth: ...` and `Run 'berth CMD --help'` (exit 125).
fn usage_path(cmd: &Cmd) -> Option<&'static str> {
    use cli::ContainerCmd as C;
    match cmd {
        Cmd::Run(_) | Cmd::Container(C::Run(_)) => Some("run"),
        Cmd::Create(_) | Cmd::Container(C::Create(_)) => Some("create"),
        _ => None,
    }
}

/// Run the CLI with explicit arguments (argv[0] included).
pub fn run_args(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return clap_error(e, &args),
    };
    if cli.version {
        println!(
            "{PROG} version {}, build unknown",
            env!("CARGO_PKG_VERSION")
        );
        return 0;
    }
    let Some(cmd) = cli.command else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return 0;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{PROG}: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let usage = usage_path(&cmd);
    let host = cli.host.clone();
    let local = tokio::task::LocalSet::new();
    let res = local.block_on(&rt, commands::dispatch(host.as_deref(), cmd));
    // Do not wait for a stdin reader blocked in a worker thread: exit right away.
    std::mem::forget(rt);
    match res {
        Ok(()) => 0,
        Err(CliError::Exit(code)) => code,
        Err(CliError::Opts(opts::OptsError::Plain(m))) => {
            eprintln!("{m}");
            1
        }
        Err(CliError::Opts(e @ opts::OptsError::Invalid { .. })) if usage.is_some() => {
            // pflag-style: the flag error, then the usage line, no program prefix.
            let u = usage.unwrap_or_default();
            eprintln!(
                "{e}\n\nUsage:  {PROG} {u} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun '{PROG} {u} --help' for more information"
            );
            125
        }
        Err(e) => {
            let msg = e.render();
            match usage {
                Some(u) => {
                    eprintln!("{PROG}: {msg}\n\nRun '{PROG} {u} --help' for more information");
                    125
                }
                None => {
                    eprintln!("{msg}");
                    1
                }
            }
        }
    }
}

/// Print clap's complaint the way docker's cobra/pflag would, and pick docker's status.
fn clap_error(e: clap::Error, args: &[String]) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return 0;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return 0;
        }
        _ => {}
    }
    // The subcommand path the user typed, for "Run 'berth ps --help'".
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    let cmd_path = match words.as_slice() {
        [a, b, ..] if matches!(*a, "container" | "image" | "system" | "network" | "volume") => {
            format!("{a} {b}")
        }
        [a, ..] => a.to_string(),
        [] => String::new(),
    };
    let ctx = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(" "),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let bad = ctx(ContextKind::InvalidSubcommand);
            let full = if cmd_path.contains(' ') || words.len() > 1 && bad != words[0] {
                format!("{PROG} {} {bad}", words[0])
            } else {
                format!("{PROG} {bad}")
            };
            eprintln!(
                "{PROG}: unknown command: {full}\n\nRun '{PROG} --help' for more information"
            );
            1
        }
        ErrorKind::UnknownArgument => {
            let bad = ctx(ContextKind::InvalidArg);
            let flag = if bad.starts_with("--") {
                format!("unknown flag: {bad}")
            } else {
                format!(
                    "unknown shorthand flag: '{}' in {bad}",
                    bad.trim_start_matches('-').chars().next().unwrap_or('?')
                )
            };
            eprintln!(
                "{flag}\n\nUsage:  {PROG} {cmd_path} [OPTIONS]\n\nRun '{PROG} {cmd_path} --help' for more information"
            );
            125
        }
        ErrorKind::MissingRequiredArgument
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::TooFewValues => {
            eprintln!(
                "{PROG}: '{PROG} {cmd_path}' requires at least 1 argument\n\nSee '{PROG} {cmd_path} --help' for more information"
            );
            1
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = ctx(ContextKind::InvalidArg);
            let val = ctx(ContextKind::InvalidValue);
            eprintln!(
                "invalid argument {val:?} for \"{arg}\" flag\nSee '{PROG} {cmd_path} --help'."
            );
            125
        }
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            eprintln!("{PROG}: {first}\nSee '{PROG} {cmd_path} --help'.");
            if matches!(
                e.kind(),
                ErrorKind::TooManyValues | ErrorKind::UnknownArgument
            ) {
                125
            } else {
                1
            }
        }
    }
}
