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

/// `berth [-H HOST] exec ...` parsed with only the exec subcommand built.
///
/// clap's derive builds the whole command tree (every subcommand and flag of docker's CLI)
/// before it parses anything: about a third of the CLI's start-up CPU, paid on the exec
/// round trip that issue #3 measures. When the command line has exactly this shape, only
/// `exec`'s arguments are built and parsed. Anything else (other global flags, `--help`,
/// a parse error) returns `None` and goes through the full parser, so messages and
/// behaviour stay those of the full tree; a test checks both parsers agree.
fn parse_exec_fast(args: &[String]) -> Option<Cli> {
    use clap::{Args, FromArgMatches};
    let mut rest = args.get(1..)?;
    let mut host = None;
    match rest.first().map(String::as_str) {
        Some("-H" | "--host") => {
            host = Some(rest.get(1)?.clone());
            rest = &rest[2..];
        }
        Some(a) if a.starts_with("--host=") => {
            host = Some(a["--host=".len()..].to_string());
            rest = &rest[1..];
        }
        _ => {}
    }
    if rest.first().map(String::as_str) != Some("exec") {
        return None;
    }
    let cmd = cli::ExecArgs::augment_args(clap::Command::new("exec"));
    let m = cmd.try_get_matches_from(rest).ok()?;
    let exec = cli::ExecArgs::from_arg_matches(&m).ok()?;
    Some(Cli {
        host,
        log_level: "info".to_string(),
        debug: false,
        config: None,
        context: None,
        version: false,
        command: Some(Cmd::Exec(exec)),
    })
}

/// Run the CLI with explicit arguments (argv[0] included).
pub fn run_args(args: Vec<String>) -> i32 {
    let parsed = match parse_exec_fast(&args) {
        Some(c) => Ok(c),
        None => Cli::try_parse_from(&args),
    };
    let cli = match parsed {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn exec_fast_path_agrees_with_the_full_parser() {
        for line in [
            "berth exec c true",
            "berth -H unix:///x.sock exec c true",
            "berth --host unix:///x.sock exec -it c sh -c ls",
            "berth --host=tcp://h:1 exec -e A=1 -e B=2 --env-file f -u 1:2 -w /tmp c ls -l",
            "berth exec -d --detach-keys ctrl-x --privileged c sleep 1",
            "berth exec c ls -- -x --y",
        ] {
            let args = argv(line);
            let fast = parse_exec_fast(&args).unwrap_or_else(|| panic!("fast path: {line}"));
            let full = Cli::try_parse_from(&args).expect("full parser");
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line}");
        }
    }

    #[test]
    fn exec_fast_path_leaves_other_shapes_to_the_full_parser() {
        for line in [
            "berth exec",
            "berth exec c",
            "berth exec --help",
            "berth exec --bogus c true",
            "berth -D exec c true",
            "berth --log-level debug exec c true",
            "berth container exec c true",
            "berth ps",
            "berth -H",
        ] {
            assert!(parse_exec_fast(&argv(line)).is_none(), "{line}");
        }
    }
}
