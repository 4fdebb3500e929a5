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

/// `berth [-H HOST] CMD ...` parsed with only CMD's arguments built.
///
/// clap's derive builds the whole command tree (every subcommand and flag of docker's CLI,
/// about a megabyte of heap and some 300 page faults) before it parses anything: most of the
/// CLI's start-up CPU, paid once per `run`, `exec`, `stop` or `rm`. When the command line
/// names a known command (or `container`/`image`/... and a known subcommand) and has no
/// global flag other than `-H`, only that command's arguments are built and parsed. Anything
/// else (other global flags, `--help`, `help`, a parse error) returns `None` and goes
/// through the full parser, so messages and behaviour stay those of the full tree; a test
/// checks that both parsers agree on every command.
fn parse_fast(args: &[String]) -> Option<Cli> {
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
    let command = Some(fast_command(rest)?);
    Some(Cli {
        host,
        log_level: "info".to_string(),
        debug: false,
        config: None,
        context: None,
        version: false,
        command,
    })
}

/// Parse `rest` (the command's name first) as the command `A` alone, as the full tree would.
fn leaf<A: clap::Args + clap::FromArgMatches, T>(rest: &[String], wrap: fn(A) -> T) -> Option<T> {
    // The name is only shown in messages, and a failed parse goes to the full parser.
    let m = A::augment_args(clap::Command::new("berth"))
        .try_get_matches_from(rest)
        .ok()?;
    A::from_arg_matches(&m).ok().map(wrap)
}

/// `rest` is a group (`container`, `image`, ...) followed by one of its commands: that
/// command parsed by `pick` (given its name and its arguments, name first), then wrapped.
fn group<T>(
    rest: &[String],
    wrap: fn(T) -> Cmd,
    pick: fn(&str, &[String]) -> Option<T>,
) -> Option<Cmd> {
    let rest = rest.get(1..)?;
    pick(rest.first()?, rest).map(wrap)
}

/// The fast parser's table: every command of [`Cmd`], by the names clap knows it by.
fn fast_command(rest: &[String]) -> Option<Cmd> {
    use cli::{ContainerCmd as C, ImageCmd as I, NetworkCmd as N, SystemCmd as S, VolumeCmd as V};
    match rest.first()?.as_str() {
        "run" => leaf(rest, Cmd::Run),
        "create" => leaf(rest, Cmd::Create),
        "start" => leaf(rest, Cmd::Start),
        "stop" => leaf(rest, Cmd::Stop),
        "kill" => leaf(rest, Cmd::Kill),
        "restart" => leaf(rest, Cmd::Restart),
        "pause" => leaf(rest, Cmd::Pause),
        "unpause" => leaf(rest, Cmd::Unpause),
        "wait" => leaf(rest, Cmd::Wait),
        "rm" => leaf(rest, Cmd::Rm),
        "rename" => leaf(rest, Cmd::Rename),
        "update" => leaf(rest, Cmd::Update),
        "ps" => leaf(rest, Cmd::Ps),
        "inspect" => leaf(rest, Cmd::Inspect),
        "logs" => leaf(rest, Cmd::Logs),
        "exec" => leaf(rest, Cmd::Exec),
        "attach" => leaf(rest, Cmd::Attach),
        "top" => leaf(rest, Cmd::Top),
        "port" => leaf(rest, Cmd::Port),
        "stats" => leaf(rest, Cmd::Stats),
        "images" => leaf(rest, Cmd::Images),
        "import" => leaf(rest, Cmd::Import),
        "save" => leaf(rest, Cmd::Save),
        "load" => leaf(rest, Cmd::Load),
        "tag" => leaf(rest, Cmd::Tag),
        "rmi" => leaf(rest, Cmd::Rmi),
        "history" => leaf(rest, Cmd::History),
        "pull" => leaf(rest, Cmd::Pull),
        "push" => leaf(rest, Cmd::Push),
        "login" => leaf(rest, Cmd::Login),
        "build" => leaf(rest, Cmd::Build),
        "info" => leaf(rest, Cmd::Info),
        "version" => leaf(rest, Cmd::Version),
        "compose" => leaf(rest, Cmd::Compose),
        "container" => group(rest, Cmd::Container, |name, rest| match name {
            "ls" | "list" | "ps" => leaf(rest, C::Ls),
            "inspect" => leaf(rest, C::Inspect),
            "prune" => leaf(rest, C::Prune),
            "run" => leaf(rest, C::Run),
            "create" => leaf(rest, C::Create),
            "start" => leaf(rest, C::Start),
            "stop" => leaf(rest, C::Stop),
            "kill" => leaf(rest, C::Kill),
            "restart" => leaf(rest, C::Restart),
            "pause" => leaf(rest, C::Pause),
            "unpause" => leaf(rest, C::Unpause),
            "wait" => leaf(rest, C::Wait),
            "rm" | "remove" => leaf(rest, C::Rm),
            "rename" => leaf(rest, C::Rename),
            "update" => leaf(rest, C::Update),
            "logs" => leaf(rest, C::Logs),
            "exec" => leaf(rest, C::Exec),
            "attach" => leaf(rest, C::Attach),
            "top" => leaf(rest, C::Top),
            "port" => leaf(rest, C::Port),
            "stats" => leaf(rest, C::Stats),
            _ => None,
        }),
        "image" => group(rest, Cmd::Image, |name, rest| match name {
            "ls" | "list" => leaf(rest, I::Ls),
            "inspect" => leaf(rest, I::Inspect),
            "rm" | "remove" => leaf(rest, I::Rm),
            "prune" => leaf(rest, I::Prune),
            "history" => leaf(rest, I::History),
            "tag" => leaf(rest, I::Tag),
            "import" => leaf(rest, I::Import),
            "save" => leaf(rest, I::Save),
            "load" => leaf(rest, I::Load),
            "pull" => leaf(rest, I::Pull),
            "push" => leaf(rest, I::Push),
            "build" => leaf(rest, I::Build),
            _ => None,
        }),
        "system" => group(rest, Cmd::System, |name, rest| match name {
            "prune" => leaf(rest, S::Prune),
            "info" => leaf(rest, S::Info),
            "df" => leaf(rest, S::Df),
            "events" => leaf(rest, S::Events),
            _ => None,
        }),
        "network" => group(rest, Cmd::Network, |name, rest| match name {
            "ls" | "list" => leaf(rest, N::Ls),
            "create" => leaf(rest, N::Create),
            "rm" | "remove" => leaf(rest, N::Rm),
            "inspect" => leaf(rest, N::Inspect),
            "connect" => leaf(rest, N::Connect),
            "disconnect" => leaf(rest, N::Disconnect),
            "prune" => leaf(rest, N::Prune),
            _ => None,
        }),
        "volume" => group(rest, Cmd::Volume, |name, rest| match name {
            "ls" | "list" => leaf(rest, V::Ls),
            "create" => leaf(rest, V::Create),
            "rm" | "remove" => leaf(rest, V::Rm),
            "inspect" => leaf(rest, V::Inspect),
            "prune" => leaf(rest, V::Prune),
            _ => None,
        }),
        _ => None,
    }
}

/// Run the CLI with explicit arguments (argv[0] included).
pub fn run_args(args: Vec<String>) -> i32 {
    let parsed = match parse_fast(&args) {
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

/// The first two words of the command path in `args`, skipping the global flags and the
/// values of those that take one (`berth -H unix:///s stop` is `stop`).
fn command_words(args: &[String]) -> Vec<&str> {
    let mut words = Vec::new();
    let mut it = args.iter().skip(1).map(String::as_str);
    while let Some(a) = it.next() {
        if matches!(
            a,
            "-H" | "--host" | "-l" | "--log-level" | "--config" | "-c" | "--context"
        ) {
            it.next();
        } else if !a.starts_with('-') {
            words.push(a);
            if words.len() == 2 {
                break;
            }
        }
    }
    words
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
    let words = command_words(args);
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

    /// One command line per command and alias of the full tree, for the fast parser.
    const FAST_LINES: &[&str] = &[
        "berth exec c true",
        "berth -H unix:///x.sock exec c true",
        "berth --host unix:///x.sock exec -it c sh -c ls",
        "berth --host=tcp://h:1 exec -e A=1 -e B=2 --env-file f -u 1:2 -w /tmp c ls -l",
        "berth exec -d --detach-keys ctrl-x --privileged c sleep 1",
        "berth exec c ls -- -x --y",
        "berth run --rm busybox true",
        "berth -H unix:///x.sock run -d --name n -e A=1 -p 8080:80 -v /a:/b --network none busybox sh -c ls -l",
        "berth run -it -h host --entrypoint sh -m 10m --cpus 0.5 --restart on-failure:3 busybox",
        "berth create --stop-signal KILL busybox sleep 60",
        "berth start -a -i c",
        "berth stop -t 1 c d",
        "berth stop --signal INT c",
        "berth kill -s HUP c",
        "berth restart -t 0 c",
        "berth pause c",
        "berth unpause c",
        "berth wait c d",
        "berth rm -f -v c",
        "berth rename a b",
        "berth update -m 10m --cpus 1 c",
        "berth ps -a -q --filter status=exited --format {{.Names}} --no-trunc -n 3 -s",
        "berth inspect -f {{.Id}} --type container c",
        "berth logs -f --tail 5 -t --since 1m c",
        "berth attach --no-stdin c",
        "berth top c aux",
        "berth port c 80/tcp",
        "berth stats --no-stream c",
        "berth images -a --digests -q --filter dangling=true",
        "berth import - img:tag",
        "berth save -o f.tar img",
        "berth load -i f.tar -q",
        "berth tag a b",
        "berth rmi -f a",
        "berth history --no-trunc img",
        "berth pull localhost:5000/a:b",
        "berth push localhost:5000/a:b",
        "berth login -u u --password-stdin localhost:5000",
        "berth build -t t -f Dockerfile --target x --build-arg A=1 .",
        "berth info --format {{.ID}}",
        "berth version",
        "berth compose -f a.yaml -p p up -d --build",
        "berth compose down -v",
        "berth container ls -a",
        "berth container list",
        "berth container ps -q",
        "berth container inspect c",
        "berth container prune -f",
        "berth container run --rm busybox true",
        "berth container create busybox",
        "berth container start c",
        "berth container stop c",
        "berth container kill c",
        "berth container restart c",
        "berth container pause c",
        "berth container unpause c",
        "berth container wait c",
        "berth container rm -f c",
        "berth container remove c",
        "berth container rename a b",
        "berth container update --pids-limit 5 c",
        "berth container logs c",
        "berth container exec c true",
        "berth container attach c",
        "berth container top c",
        "berth container port c",
        "berth container stats --no-stream",
        "berth image ls",
        "berth image list -q",
        "berth image inspect i",
        "berth image rm i",
        "berth image remove i",
        "berth image prune -a -f",
        "berth image history i",
        "berth image tag a b",
        "berth image import f.tar",
        "berth image save i",
        "berth image load",
        "berth image pull a",
        "berth image push a",
        "berth image build .",
        "berth system prune -a -f --volumes",
        "berth system info",
        "berth system df -v",
        "berth system events --since 1m",
        "berth network ls",
        "berth network list",
        "berth network create --subnet 10.9.0.0/24 n",
        "berth network rm n",
        "berth network remove n",
        "berth network inspect n",
        "berth network connect n c",
        "berth network disconnect n c",
        "berth network prune -f",
        "berth volume ls",
        "berth volume list",
        "berth volume create v",
        "berth volume rm v",
        "berth volume remove v",
        "berth volume inspect v",
        "berth volume prune -f",
    ];

    #[test]
    fn fast_path_agrees_with_the_full_parser() {
        for line in FAST_LINES {
            let args = argv(line);
            let fast = parse_fast(&args).unwrap_or_else(|| panic!("fast path: {line}"));
            let full = Cli::try_parse_from(&args).expect("full parser");
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line}");
        }
    }

    #[test]
    fn fast_path_covers_every_command_and_alias() {
        use clap::CommandFactory;
        let tested: Vec<Vec<&str>> = FAST_LINES
            .iter()
            .map(|l| {
                l.split(' ')
                    .skip(1)
                    .skip_while(|w| w.starts_with('-') || w.contains("://"))
                    .take(2)
                    .collect()
            })
            .collect();
        let seen = |path: &[&str]| tested.iter().any(|t| t.starts_with(path));
        for c in Cli::command().get_subcommands() {
            let names: Vec<&str> = std::iter::once(c.get_name())
                .chain(c.get_all_aliases())
                .collect();
            let groups = ["container", "image", "system", "network", "volume"];
            for n in names {
                if groups.contains(&n) {
                    for s in c.get_subcommands() {
                        for sn in std::iter::once(s.get_name()).chain(s.get_all_aliases()) {
                            assert!(seen(&[n, sn]), "no fast-path case for `{n} {sn}`");
                        }
                    }
                } else {
                    assert!(seen(&[n]), "no fast-path case for `{n}`");
                }
            }
        }
    }

    #[test]
    fn command_words_skip_global_flags_and_their_values() {
        for (line, want) in [
            ("berth stop", vec!["stop"]),
            ("berth -H unix:///x.sock stop", vec!["stop"]),
            (
                "berth --log-level debug -D container ls -a",
                vec!["container", "ls"],
            ),
            ("berth --host=unix:///x.sock image rm", vec!["image", "rm"]),
        ] {
            assert_eq!(command_words(&argv(line)), want, "{line}");
        }
    }

    #[test]
    fn fast_path_leaves_other_shapes_to_the_full_parser() {
        for line in [
            "berth exec",
            "berth exec c",
            "berth exec --help",
            "berth exec --bogus c true",
            "berth -D exec c true",
            "berth --log-level debug exec c true",
            "berth help run",
            "berth run --help",
            "berth container",
            "berth container bogus",
            "berth bogus",
            "berth -H",
        ] {
            assert!(parse_fast(&argv(line)).is_none(), "{line}");
        }
    }
}
