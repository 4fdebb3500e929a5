//! From a container record to the OCI runtime spec, and the /etc files the engine writes.

use super::Container;
use crate::{EngineConfig, Error, Result};
use berth_runtime::spec::{Mount, NetworkNs, Resources, SeccompMode, SpecOptions, Ulimit};
use std::collections::BTreeMap;
use std::path::Path;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Writes hostname, hosts and resolv.conf for a container (bind-mounted at start). Without
/// fsync (three of them were a third of `create`): the files are derived from the record,
/// which is committed durably, and a start writes again any that a host crash or reboot
/// left missing or empty ([`ensure_etc_files`]; they are on the exec root, see
/// `EngineConfig::container_etc_dir`).
pub fn write_etc_files(c: &Container, cfg: &EngineConfig) -> Result<()> {
    write_etc_where(c, cfg, |_| true)
}

/// Before a start: the base file again for each of hostname, hosts and resolv.conf that is
/// missing or empty (a host crash after `create` can leave either, see [`write_etc_files`]).
/// Three `stat`s when all is well. The network's rewrite of hosts and resolv.conf comes
/// after this.
pub fn ensure_etc_files(c: &Container, cfg: &EngineConfig) -> Result<()> {
    let lost = |p: &Path| std::fs::metadata(p).map_or(true, |m| m.len() == 0);
    if ![&c.hostname_path, &c.hosts_path, &c.resolv_conf_path]
        .into_iter()
        .any(|p| lost(p))
    {
        return Ok(());
    }
    write_etc_where(c, cfg, lost)
}

/// Writes (without fsync) the base /etc files whose path `which` accepts.
fn write_etc_where(c: &Container, cfg: &EngineConfig, which: impl Fn(&Path) -> bool) -> Result<()> {
    // Their folder (the three share one) is gone after a reboot.
    if let Some(dir) = c.hostname_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    for (path, data) in etc_files(c, cfg)? {
        if which(path) {
            crate::util::write_world_readable(path, data.as_bytes(), false)
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        }
    }
    Ok(())
}

/// The base `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` of a container, with
/// their paths (the network setup adds addresses to them before writing).
pub fn etc_files<'a>(
    c: &'a Container,
    cfg: &EngineConfig,
) -> Result<[(&'a std::path::Path, String); 3]> {
    let hc = &c.host_config;
    let host_mode = hc.network_mode == "host";
    let hostname = format!("{}\n", c.config.hostname);
    let mut hosts = if host_mode {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        )
    };
    for h in hc.extra_hosts.iter().flatten() {
        let (name, ip) = h
            .split_once(':')
            .or_else(|| h.split_once('='))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "invalid argument \"{h}\" for \"--add-host\" flag: invalid format"
                ))
            })?;
        let ip = if ip == "host-gateway" {
            "127.0.0.1"
        } else {
            ip
        };
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    let resolv = resolv_conf(hc, cfg);
    Ok([
        (&c.hostname_path, hostname),
        (&c.hosts_path, hosts),
        (&c.resolv_conf_path, resolv),
    ])
}

fn resolv_conf(hc: &crate::models::HostConfig, cfg: &EngineConfig) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let dns: Vec<String> = hc
        .dns
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| cfg.dns.clone());
    let mut out = String::new();
    let mut servers = Vec::new();
    let mut search = hc.dns_search.clone().unwrap_or_default();
    let mut options = hc.dns_options.clone().unwrap_or_default();
    for line in host.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => {
                if let Some(s) = f.next() {
                    // A loopback resolver of the host is unreachable from the container's netns.
                    if hc.network_mode == "host" || !(s.starts_with("127.") || s == "::1") {
                        servers.push(s.to_string());
                    }
                }
            }
            Some("search") | Some("domain") if hc.dns_search.is_none() => {
                search.extend(f.map(str::to_string))
            }
            Some("options") if hc.dns_options.is_none() => options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    if !dns.is_empty() {
        servers = dns;
    } else if servers.is_empty() && hc.network_mode != "none" {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The OCI spec inputs for a container whose rootfs is mounted at `rootfs`.
/// The container's sysctls plus dockerd's defaults (since 20.10) for a network namespace of
/// its own: any user may open ICMP echo sockets (`ping` as non-root) and bind ports below
/// 1024. Never for `host` or `container:` networking, whose namespace is someone else's; a
/// value the user set wins.
fn default_sysctls(hc: &crate::models::HostConfig) -> BTreeMap<String, String> {
    let mut sysctls = hc.sysctls.clone().unwrap_or_default();
    if hc.network_mode != "host" && !hc.network_mode.starts_with("container:") {
        for (k, v) in [
            ("net.ipv4.ping_group_range", "0 2147483647"),
            ("net.ipv4.ip_unprivileged_port_start", "0"),
        ] {
            sysctls.entry(k.into()).or_insert_with(|| v.into());
        }
    }
    sysctls
}

pub fn spec_options(c: &Container, cfg: &EngineConfig, rootfs: &Path) -> Result<SpecOptions> {
    let hc = &c.host_config;
    let mut user = berth_runtime::user::resolve_user(rootfs, &c.config.user)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    if let Some(groups) = hc.group_add.as_deref().filter(|g| !g.is_empty()) {
        let gids = berth_runtime::user::resolve_groups(rootfs, groups)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        user.additional_gids.extend(gids);
    }
    let mut env = c.config.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", c.config.hostname));
    }
    if c.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            if user.home.is_empty() {
                "/"
            } else {
                &user.home
            }
        ));
    }
    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    let cwd = if c.config.working_dir.is_empty() {
        "/".to_string()
    } else {
        c.config.working_dir.clone()
    };
    let mut seccomp = SeccompMode::Default;
    let mut no_new_privileges = false;
    for opt in hc.security_opt.iter().flatten() {
        let (k, v) = opt
            .split_once('=')
            .or_else(|| opt.split_once(':'))
            .unwrap_or((opt.as_str(), "true"));
        match k {
            "no-new-privileges" => no_new_privileges = v != "false",
            "seccomp" if v == "unconfined" => seccomp = SeccompMode::Unconfined,
            "seccomp" => {
                let profile = std::fs::read_to_string(v).map_err(|e| {
                    Error::InvalidArgument(format!("opening seccomp profile ({v}) failed: {e}"))
                })?;
                seccomp = SeccompMode::Profile(profile);
            }
            _ => {}
        }
    }
    let network = match hc.network_mode.as_str() {
        "host" => NetworkNs::Host,
        _ => NetworkNs::New,
    };
    let mut mounts = Vec::new();
    let bind = |src: &Path, dst: &str, ro: bool| Mount {
        destination: dst.into(),
        source: src.to_string_lossy().into_owned(),
        typ: "bind".into(),
        options: vec![
            "rbind".into(),
            "rprivate".into(),
            if ro { "ro".into() } else { "rw".into() },
        ],
    };
    mounts.push(bind(&c.resolv_conf_path, "/etc/resolv.conf", false));
    mounts.push(bind(&c.hostname_path, "/etc/hostname", false));
    mounts.push(bind(&c.hosts_path, "/etc/hosts", false));
    // Binds, volumes and tmpfs of the container (see mounts.rs), ordered parents first.
    let mounts = super::mounts::merge_mounts(mounts, super::mounts::oci_mounts(c)?);
    super::mounts::ensure_file_mountpoints(rootfs, &mounts).map_err(|e| {
        Error::Internal(format!(
            "create file mount points in {}: {e}",
            rootfs.display()
        ))
    })?;
    let mut ulimits: Vec<Ulimit> = Vec::new();
    for u in cfg
        .default_ulimits
        .iter()
        .chain(hc.ulimits.iter().flatten())
    {
        ulimits.retain(|x| x.name != u.name);
        ulimits.push(Ulimit {
            name: u.name.clone(),
            soft: u.soft as u64,
            hard: u.hard as u64,
        });
    }
    let opt = |v: i64| (v != 0).then_some(v);
    let resources = Resources {
        memory: opt(hc.memory),
        memory_swap: opt(hc.memory_swap),
        memory_reservation: opt(hc.memory_reservation),
        cpu_shares: (hc.cpu_shares != 0).then_some(hc.cpu_shares as u64),
        cpu_quota: opt(hc.cpu_quota),
        cpu_period: (hc.cpu_period != 0).then_some(hc.cpu_period as u64),
        nano_cpus: opt(hc.nano_cpus),
        cpuset_cpus: (!hc.cpuset_cpus.is_empty()).then(|| hc.cpuset_cpus.clone()),
        cpuset_mems: (!hc.cpuset_mems.is_empty()).then(|| hc.cpuset_mems.clone()),
        pids_limit: hc.pids_limit.filter(|p| *p > 0),
        ..Default::default()
    };
    let init = if hc.init.unwrap_or(false) {
        Some(cfg.init_binary.clone().ok_or_else(|| {
            Error::InvalidArgument("--init: no init binary found (install tini)".into())
        })?)
    } else {
        None
    };
    Ok(SpecOptions {
        rootfs: rootfs.to_path_buf(),
        readonly_rootfs: hc.readonly_rootfs,
        args,
        env,
        cwd,
        terminal: c.config.tty,
        user,
        hostname: c.config.hostname.clone(),
        domainname: c.config.domainname.clone(),
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        privileged: hc.privileged,
        no_new_privileges,
        seccomp,
        resources,
        ulimits,
        shm_size: Some(hc.shm_size as u64),
        sysctls: default_sysctls(hc),
        mounts,
        network,
        ipc_host: hc.ipc_mode == "host",
        pid_host: hc.pid_mode == "host",
        uts_host: hc.uts_mode == "host",
        cgroups_path: c.cgroups_path.clone(),
        init,
        oom_score_adj: (hc.oom_score_adj != 0).then_some(hc.oom_score_adj as i32),
        annotations: BTreeMap::new(),
        rootfs_propagation: super::mounts::rootfs_propagation(c)?,
    })
}
