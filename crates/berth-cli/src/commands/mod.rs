//! One module per family of commands; `dispatch` routes the parsed command line. Every
//! command talks to the daemon only through `berth_client::Client`.

pub mod container;
pub mod image;
pub mod inspect;
pub mod objects;
pub mod system;

use berth_client::Client;
use serde_json::{Map, Value};

use crate::cli::{Cmd, ContainerCmd, ImageCmd, NetworkCmd, SystemCmd, VolumeCmd};
use crate::error::{CliError, CliResult};

/// A client for the daemon named by `-H` / the environment; the API version is negotiated
/// by the first answer (no `_ping` round trip first, see `berth_client`).
pub async fn connect(host: Option<&str>) -> CliResult<Client> {
    Ok(Client::from_env(host).await?)
}

/// Run one parsed command.
pub async fn dispatch(host: Option<&str>, cmd: Cmd) -> CliResult {
    if let Cmd::Version(f) = &cmd {
        // `version` prints the client part even without a daemon.
        return system::version(host, f).await;
    }
    // compose connects itself: `config` needs no daemon.
    let cmd = match cmd {
        Cmd::Compose(a) => return crate::compose::run(host, a).await,
        other => other,
    };
    // docker rejects bad run/create flags before it talks to the daemon.
    if let Cmd::Run(a)
    | Cmd::Create(a)
    | Cmd::Container(ContainerCmd::Run(a) | ContainerCmd::Create(a)) = &cmd
    {
        crate::opts::build_create(a)?;
    }
    let c = connect(host).await?;
    match cmd {
        Cmd::Compose(a) => crate::compose::run(host, a).await,
        Cmd::Run(a) | Cmd::Container(ContainerCmd::Run(a)) => container::run(&c, a).await,
        Cmd::Create(a) | Cmd::Container(ContainerCmd::Create(a)) => container::create(&c, a).await,
        Cmd::Start(a) | Cmd::Container(ContainerCmd::Start(a)) => container::start(&c, a).await,
        Cmd::Stop(a) | Cmd::Container(ContainerCmd::Stop(a)) => container::stop(&c, a, false).await,
        Cmd::Restart(a) | Cmd::Container(ContainerCmd::Restart(a)) => {
            container::stop(&c, a, true).await
        }
        Cmd::Kill(a) | Cmd::Container(ContainerCmd::Kill(a)) => container::kill(&c, a).await,
        Cmd::Pause(a) | Cmd::Container(ContainerCmd::Pause(a)) => {
            container::pause(&c, a, true).await
        }
        Cmd::Unpause(a) | Cmd::Container(ContainerCmd::Unpause(a)) => {
            container::pause(&c, a, false).await
        }
        Cmd::Wait(a) | Cmd::Container(ContainerCmd::Wait(a)) => container::wait(&c, a).await,
        Cmd::Rm(a) | Cmd::Container(ContainerCmd::Rm(a)) => container::rm(&c, a).await,
        Cmd::Rename(a) | Cmd::Container(ContainerCmd::Rename(a)) => {
            match c.container_rename(&a.container, &a.new_name).await {
                Ok(()) => Ok(()),
                Err(e) => Err(CliError::Msg(format!(
                    "{}\nError: failed to rename container named {}",
                    CliError::from(e).render(),
                    a.container
                ))),
            }
        }
        Cmd::Update(a) | Cmd::Container(ContainerCmd::Update(a)) => container::update(&c, a).await,
        Cmd::Ps(a) | Cmd::Container(ContainerCmd::Ls(a)) => container::ps(&c, a).await,
        Cmd::Logs(a) | Cmd::Container(ContainerCmd::Logs(a)) => container::logs(&c, a).await,
        Cmd::Exec(a) | Cmd::Container(ContainerCmd::Exec(a)) => container::exec(&c, a).await,
        Cmd::Attach(a) | Cmd::Container(ContainerCmd::Attach(a)) => container::attach(&c, a).await,
        Cmd::Top(a) | Cmd::Container(ContainerCmd::Top(a)) => container::top(&c, a).await,
        Cmd::Port(a) | Cmd::Container(ContainerCmd::Port(a)) => container::port(&c, a).await,
        Cmd::Stats(a) | Cmd::Container(ContainerCmd::Stats(a)) => container::stats(&c, a).await,
        Cmd::Container(ContainerCmd::Inspect(a)) => {
            inspect::inspect(&c, Some("container"), a.format.as_deref(), a.size, &a.names).await
        }
        Cmd::Container(ContainerCmd::Prune(a)) => system::prune_containers(&c, a).await,
        Cmd::Inspect(a) => {
            inspect::inspect(&c, a.kind.as_deref(), a.format.as_deref(), a.size, &a.names).await
        }
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => image::images(&c, a).await,
        Cmd::Image(ImageCmd::Inspect(a)) => {
            inspect::inspect(&c, Some("image"), a.format.as_deref(), false, &a.names).await
        }
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => image::rmi(&c, a).await,
        Cmd::Image(ImageCmd::Prune(a)) => image::prune(&c, a).await,
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => image::history(&c, a).await,
        Cmd::Tag(a) | Cmd::Image(ImageCmd::Tag(a)) => image::tag(&c, a).await,
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => image::import(&c, a).await,
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => image::save(&c, a).await,
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => image::load(&c, a).await,
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => image::pull(&c, a).await,
        Cmd::Push(a) | Cmd::Image(ImageCmd::Push(a)) => image::push(&c, a).await,
        Cmd::Build(a) | Cmd::Image(ImageCmd::Build(a)) => image::build(&c, a).await,
        Cmd::Login(a) => system::login(&c, a).await,
        Cmd::Info(f) | Cmd::System(SystemCmd::Info(f)) => system::info(&c, &f).await,
        Cmd::System(SystemCmd::Prune(a)) => system::prune_system(&c, a).await,
        Cmd::System(SystemCmd::Df(a)) => system::df(&c, a).await,
        Cmd::System(SystemCmd::Events(a)) => system::events(&c, a).await,
        Cmd::Network(NetworkCmd::Ls(a)) => objects::network_ls(&c, a).await,
        Cmd::Network(NetworkCmd::Create(a)) => objects::network_create(&c, a).await,
        Cmd::Network(NetworkCmd::Rm(a)) => objects::network_rm(&c, a).await,
        Cmd::Network(NetworkCmd::Inspect(a)) => {
            inspect::inspect(&c, Some("network"), a.format.as_deref(), false, &a.names).await
        }
        Cmd::Network(NetworkCmd::Connect(a)) => objects::network_connect(&c, a).await,
        Cmd::Network(NetworkCmd::Disconnect(a)) => objects::network_disconnect(&c, a).await,
        Cmd::Network(NetworkCmd::Prune(a)) => objects::network_prune(&c, a).await,
        Cmd::Volume(VolumeCmd::Ls(a)) => objects::volume_ls(&c, a).await,
        Cmd::Volume(VolumeCmd::Create(a)) => objects::volume_create(&c, a).await,
        Cmd::Volume(VolumeCmd::Rm(a)) => objects::volume_rm(&c, a).await,
        Cmd::Volume(VolumeCmd::Inspect(a)) => {
            inspect::inspect(&c, Some("volume"), a.format.as_deref(), false, &a.names).await
        }
        Cmd::Volume(VolumeCmd::Prune(a)) => objects::volume_prune(&c, a).await,
        Cmd::Version(_) => Ok(()),
    }
}

/// `--filter k=v` flags into the API's `{"k": ["v", ...]}` (docker's `filters.Args`
/// serialises as `{"k": {"v": true}}`; daemons accept both, the list form is older and
/// simpler).
pub fn filters(list: &[String]) -> CliResult<Value> {
    let mut m: Map<String, Value> = Map::new();
    for f in list {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| CliError::Msg(format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)")))?;
        let e = m
            .entry(k.trim().to_lowercase())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(o) = e {
            o.insert(v.trim().to_string(), Value::Bool(true));
        }
    }
    Ok(Value::Object(m))
}

/// Run `f` for each name; print each name that succeeded (docker prints what the user
/// typed), gather errors and fail with all of them at the end.
pub async fn for_each<F, Fut>(names: &[String], f: F) -> CliResult
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = CliResult>,
{
    let mut errs = Vec::new();
    for n in names {
        match f(n.clone()).await {
            Ok(()) => println!("{n}"),
            Err(e) => errs.push(e.render()),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(CliError::Many(errs))
    }
}

/// Print rendered output without adding anything.
pub fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Seconds since the epoch now.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Go's `time.Time.String()` of a unix timestamp in local time:
/// `2024-01-02 15:04:05 +0000 UTC`.
pub fn go_time_string(secs: i64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) => {
            let off = t.format("%z").to_string();
            let zone = if off == "+0000" {
                "UTC".to_string()
            } else {
                t.format("%Z").to_string()
            };
            format!("{} {off} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => String::new(),
    }
}

/// Parse an RFC 3339 timestamp (`Created` of image inspect, `StartedAt`) into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

/// docker's `stringid.TruncateID`: drop an algorithm prefix, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    id.chars().take(12).collect()
}

/// docker's `formatter.Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut o: String = s.chars().take(max - 1).collect();
    o.push('…');
    o
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\x07' => o.push_str("\\a"),
            '\x08' => o.push_str("\\b"),
            '\x0c' => o.push_str("\\f"),
            '\x0b' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(truncate_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(truncate_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(ellipsis("sleep 1000", 20), "sleep 1000");
        assert_eq!(
            ellipsis("sh -c 'while true; do echo hi; done'", 20),
            "sh -c 'while true; …"
        );
        assert_eq!(go_quote("a \"b\"\n"), "\"a \\\"b\\\"\\n\"");
    }

    #[test]
    fn filter_flags() {
        let f = filters(&[
            "status=running".into(),
            "label=a=b".into(),
            "status=paused".into(),
        ])
        .expect("valid filters");
        assert_eq!(
            f,
            serde_json::json!({"status": {"running": true, "paused": true}, "label": {"a=b": true}})
        );
        assert!(filters(&["nope".into()]).is_err());
    }

    #[test]
    fn go_time() {
        // Only the layout is checked: the local zone of the test machine varies.
        let s = go_time_string(0);
        assert!(s.len() >= 25, "{s}");
        assert_eq!(parse_rfc3339("2024-01-02T03:04:05.123Z"), Some(1704164645));
    }
}
