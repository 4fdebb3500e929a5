//! OCI runtime spec (`config.json`) generation with Docker's defaults.
//!
//! This module owns the translation from berth's container options ([`SpecOptions`]) into
//! the document crun/runc read. Docker's defaults are reproduced exactly: the capability set,
//! the seccomp profile (Docker's format, resolved for the container's capabilities and the
//! host architecture as moby's `profiles/seccomp` does), masked and read-only paths, the
//! default mounts, device cgroup rules and namespaces.
//!
//! Host facts that change the output (cgroup version, swap accounting, current rlimits, the
//! host's devices for `--privileged`) are gathered once into [`HostInfo`] so the rules stay
//! pure functions that unit tests drive with a fake host.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::cgroups::{self, CgroupMode};
use crate::user::ResolvedUser;

/// Docker's seccomp profile, in Docker's own format (with includes/excludes).
const DEFAULT_SECCOMP: &str = include_str!("seccomp-default.json");

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, in number order.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default `/dev/shm` size.
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unknown capability: \"{0}\"")]
    UnknownCapability(String),
    #[error("unknown ulimit name: \"{0}\"")]
    UnknownUlimit(String),
    #[error("invalid ulimit {name}: soft limit {soft} is greater than hard limit {hard}")]
    UlimitSoftAboveHard { name: String, soft: u64, hard: u64 },
    #[error("invalid seccomp profile: {0}")]
    SeccompProfile(String),
    #[error("container command is empty")]
    EmptyArgs,
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("serialize runtime spec: {0}")]
    Serialize(#[from] serde_json::Error),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SeccompMode {
    /// Docker's default profile.
    #[default]
    Default,
    Unconfined,
    /// A profile in Docker's JSON format (what `--security-opt seccomp=FILE` reads).
    Profile(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetworkNs {
    /// A fresh network namespace with only `lo` (`--network none`).
    #[default]
    New,
    /// Join an existing namespace (a bind-mounted netns file or `/proc/<pid>/ns/net`).
    Path(PathBuf),
    Host,
}

/// cgroup limits, with Docker's field meanings (bytes, shares, microseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    pub memory: Option<i64>,
    /// Memory plus swap; `-1` unlimited; unset with `memory` set means twice `memory`.
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swappiness: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// `--cpus` in units of 1e-9 CPUs.
    pub nano_cpus: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `<= 0` means unlimited.
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    pub destination: String,
    pub source: String,
    pub typ: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SpecOptions {
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub terminal: bool,
    pub user: ResolvedUser,
    pub hostname: String,
    pub domainname: String,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub no_new_privileges: bool,
    pub seccomp: SeccompMode,
    pub resources: Resources,
    pub ulimits: Vec<Ulimit>,
    pub shm_size: Option<u64>,
    pub sysctls: BTreeMap<String, String>,
    /// Extra mounts, applied after the defaults; one with the same destination as a default
    /// mount replaces it (as `-v /dev/shm:/dev/shm` does in Docker).
    pub mounts: Vec<Mount>,
    pub network: NetworkNs,
    pub ipc_host: bool,
    pub pid_host: bool,
    pub uts_host: bool,
    pub cgroups_path: String,
    /// Bind-mounted at `/sbin/docker-init` and prepended to `args` (`--init`).
    pub init: Option<PathBuf>,
    pub oom_score_adj: Option<i32>,
    pub annotations: BTreeMap<String, String>,
    /// `linux.rootfsPropagation` (`rslave`, `rshared`): needed for a bind with slave or
    /// shared propagation to see (or send) mount events across the container's root.
    pub rootfs_propagation: Option<String>,
}

/// Host facts the spec depends on.
#[derive(Debug, Clone)]
pub struct HostInfo {
    pub cgroup: CgroupMode,
    /// cgroup v1 `memory.memsw.*` present (swap accounting on).
    pub swap_limit: bool,
    /// This process's hard limit per rlimit resource name (`nofile`, ...); `None` = unlimited.
    pub hard_limits: BTreeMap<String, Option<u64>>,
    /// Host devices for `--privileged` (path, type `c`/`b`, major, minor, mode, uid, gid).
    pub devices: Vec<HostDevice>,
    /// Kernel version (major, minor) for seccomp `minKernel`.
    pub kernel: (u32, u32),
    /// This process's capability bounding set (bit n = capability n), if known. A container
    /// can never get a capability outside it, and asking makes the runtime's capset fail with
    /// EPERM, so `--privileged` and `--cap-add ALL` are cut down to it.
    pub bounding: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    pub path: String,
    pub typ: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

const RLIMITS: &[(&str, &str, libc::__rlimit_resource_t)] = &[
    ("as", "RLIMIT_AS", libc::RLIMIT_AS),
    ("core", "RLIMIT_CORE", libc::RLIMIT_CORE),
    ("cpu", "RLIMIT_CPU", libc::RLIMIT_CPU),
    ("data", "RLIMIT_DATA", libc::RLIMIT_DATA),
    ("fsize", "RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("locks", "RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("memlock", "RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("msgqueue", "RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("nice", "RLIMIT_NICE", libc::RLIMIT_NICE),
    ("nofile", "RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("nproc", "RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("rss", "RLIMIT_RSS", libc::RLIMIT_RSS),
    ("rtprio", "RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("rttime", "RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    ("sigpending", "RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("stack", "RLIMIT_STACK", libc::RLIMIT_STACK),
];

impl HostInfo {
    /// Probe the running host, leaving `devices` empty: only `--privileged` needs them,
    /// and [`generate`] reads them for each such container.
    fn detect() -> HostInfo {
        let cgroup = cgroups::detect();
        let swap_limit = match cgroup {
            CgroupMode::V2 => true,
            _ => cgroups::v1_mount("memory")
                .map(|m| m.join("memory.memsw.limit_in_bytes").exists())
                .unwrap_or(false),
        };
        let mut hard_limits = BTreeMap::new();
        for (name, _, res) in RLIMITS {
            let mut rl = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one rlimit struct to a valid pointer we own.
            if unsafe { libc::getrlimit(*res, &mut rl) } == 0 {
                let hard = (rl.rlim_max != libc::RLIM_INFINITY).then_some(rl.rlim_max);
                hard_limits.insert(name.to_string(), hard);
            }
        }
        HostInfo {
            cgroup,
            swap_limit,
            hard_limits,
            devices: Vec::new(),
            kernel: kernel_version(),
            bounding: bounding_set(),
        }
    }
}

fn bounding_set() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn kernel_version() -> (u32, u32) {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Every char/block device under `dir`, skipping the pseudo-terminal and shm trees the
/// runtime sets up itself (as runc's `HostDevices` does).
fn host_devices(dir: &Path) -> Vec<HostDevice> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let name = entry.file_name();
            if matches!(
                name.to_str(),
                Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
            ) {
                continue;
            }
            out.extend(host_devices(&path));
            continue;
        }
        let typ = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            continue;
        };
        if path == Path::new("/dev/console") {
            continue;
        }
        let rdev = meta.rdev();
        out.push(HostDevice {
            path: path.to_string_lossy().into_owned(),
            typ,
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    out
}

/// Generate the runtime spec for `opts` on this host.
///
/// The host facts are probed once per process: reading mountinfo twice, /proc/self/status
/// and every node under /dev cost about half a millisecond of each container start, and
/// none of them changes under a running daemon (a restart probes again). The device list
/// is the exception: only `--privileged` needs it, and it is read fresh for each such
/// container, since devices come and go.
pub fn generate(opts: &SpecOptions) -> Result<Value, SpecError> {
    static HOST: std::sync::OnceLock<HostInfo> = std::sync::OnceLock::new();
    let host = HOST.get_or_init(HostInfo::detect);
    if opts.privileged {
        let host = HostInfo {
            devices: host_devices(Path::new("/dev")),
            ..host.clone()
        };
        return generate_with(opts, &host);
    }
    generate_with(opts, host)
}

/// Generate the runtime spec for `opts` given explicit host facts.
pub fn generate_with(opts: &SpecOptions, host: &HostInfo) -> Result<Value, SpecError> {
    if opts.args.is_empty() {
        return Err(SpecError::EmptyArgs);
    }
    let mut caps = capabilities(&opts.cap_add, &opts.cap_drop, opts.privileged)?;
    if let Some(bnd) = host.bounding {
        caps.retain(|c| {
            ALL_CAPS
                .iter()
                .position(|x| x == c)
                .is_some_and(|bit| bnd & (1u64 << bit) != 0)
        });
    }

    let mut args = opts.args.clone();
    if opts.init.is_some() {
        args.splice(0..0, ["/sbin/docker-init".to_string(), "--".to_string()]);
    }
    let mut process = json!({
        "terminal": opts.terminal,
        "user": {
            "uid": opts.user.uid,
            "gid": opts.user.gid,
        },
        "args": args,
        "env": opts.env,
        "cwd": if opts.cwd.is_empty() { "/" } else { opts.cwd.as_str() },
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "noNewPrivileges": opts.no_new_privileges,
    });
    if !opts.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(opts.user.additional_gids);
    }
    let rlimits = rlimits(&opts.ulimits, host)?;
    if !rlimits.is_empty() {
        process["rlimits"] = Value::Array(rlimits);
    }
    if let Some(adj) = opts.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }

    let mut linux = Map::new();
    linux.insert("cgroupsPath".into(), json!(opts.cgroups_path));
    linux.insert("namespaces".into(), Value::Array(namespaces(opts, host)));
    linux.insert("resources".into(), resources(opts, host));
    if opts.privileged {
        let devices: Vec<Value> = host
            .devices
            .iter()
            .map(|d| {
                json!({
                    "path": d.path, "type": d.typ.to_string(), "major": d.major,
                    "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid,
                })
            })
            .collect();
        linux.insert("devices".into(), Value::Array(devices));
    } else {
        linux.insert("maskedPaths".into(), json!(DEFAULT_MASKED_PATHS));
        linux.insert("readonlyPaths".into(), json!(DEFAULT_READONLY_PATHS));
        let seccomp = match &opts.seccomp {
            SeccompMode::Unconfined => None,
            SeccompMode::Default => Some(seccomp_for(DEFAULT_SECCOMP, &caps, host.kernel)?),
            SeccompMode::Profile(p) => Some(seccomp_for(p, &caps, host.kernel)?),
        };
        if let Some(s) = seccomp {
            linux.insert("seccomp".into(), s);
        }
    }
    if !opts.sysctls.is_empty() {
        linux.insert("sysctl".into(), json!(opts.sysctls));
    }
    if let Some(p) = &opts.rootfs_propagation {
        linux.insert("rootfsPropagation".into(), json!(p));
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {
            "path": opts.rootfs,
            "readonly": opts.readonly_rootfs,
        },
        "mounts": mounts(opts),
        "linux": Value::Object(linux),
    });
    // Setting a hostname without a private UTS namespace is an error in crun and runc.
    if !opts.uts_host {
        spec["hostname"] = json!(opts.hostname);
        if !opts.domainname.is_empty() {
            spec["domainname"] = json!(opts.domainname);
        }
    }
    if !opts.annotations.is_empty() {
        spec["annotations"] = json!(opts.annotations);
    }
    Ok(spec)
}

/// Normalise one capability name: upper case, `CAP_` prefix, `ALL` kept as is.
fn normalize_cap(name: &str) -> Result<String, SpecError> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability(full))
    }
}

/// The effective capability list, following moby's `caps.TweakCapabilities`.
pub fn capabilities(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, SpecError> {
    let all = || ALL_CAPS.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let adds = add
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drops = drop
        .iter()
        .map(|c| normalize_cap(c))
        .collect::<Result<Vec<_>, _>>()?;
    if privileged {
        return Ok(all());
    }
    let is_all = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut caps = if is_all(&adds) {
        all()
    } else if is_all(&drops) {
        // Drop everything, then only the explicit adds remain.
        let mut out: Vec<String> = Vec::new();
        for c in adds {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        return Ok(out);
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    caps.retain(|c| !drops.contains(c));
    for c in adds {
        if c != "ALL" && !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

fn rlimits(ulimits: &[Ulimit], host: &HostInfo) -> Result<Vec<Value>, SpecError> {
    let mut out = Vec::new();
    for u in ulimits {
        let name = u.name.to_ascii_lowercase();
        let Some((_, oci_name, _)) = RLIMITS.iter().find(|(n, _, _)| *n == name) else {
            return Err(SpecError::UnknownUlimit(u.name.clone()));
        };
        if u.soft > u.hard {
            return Err(SpecError::UlimitSoftAboveHard {
                name: name.clone(),
                soft: u.soft,
                hard: u.hard,
            });
        }
        // Raising a hard limit needs CAP_SYS_RESOURCE in the caller's user namespace, which
        // berthd may lack; the runtime would then fail with a bare EPERM. Clamp to what this
        // process may grant, as the container could never get more anyway.
        let (mut soft, mut hard) = (u.soft, u.hard);
        if let Some(Some(max)) = host.hard_limits.get(&name) {
            if hard > *max {
                tracing::warn!(
                    ulimit = %name, requested = hard, max = *max,
                    "ulimit above the daemon's hard limit; clamped"
                );
                hard = *max;
                soft = soft.min(hard);
            }
        }
        out.push(json!({"type": oci_name, "soft": soft, "hard": hard}));
    }
    Ok(out)
}

fn namespaces(opts: &SpecOptions, host: &HostInfo) -> Vec<Value> {
    let mut ns = vec![json!({"type": "mount"})];
    if !opts.pid_host {
        ns.push(json!({"type": "pid"}));
    }
    if !opts.uts_host {
        ns.push(json!({"type": "uts"}));
    }
    if !opts.ipc_host {
        ns.push(json!({"type": "ipc"}));
    }
    match &opts.network {
        NetworkNs::New => ns.push(json!({"type": "network"})),
        NetworkNs::Path(p) => ns.push(json!({"type": "network", "path": p})),
        NetworkNs::Host => {}
    }
    // Docker's default cgroupns mode is "private" on v2 and "host" on v1.
    if host.cgroup == CgroupMode::V2 {
        ns.push(json!({"type": "cgroup"}));
    }
    ns
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": typ, "source": source, "options": options})
}

fn mounts(opts: &SpecOptions) -> Vec<Value> {
    let shm_size = opts.shm_size.unwrap_or(DEFAULT_SHM_SIZE);
    let shm_opt = format!("size={shm_size}");
    let sys_ro = if opts.privileged { "rw" } else { "ro" };
    let mut defaults = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_ro],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_ro],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
    ];
    if opts.ipc_host {
        defaults.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "nosuid", "noexec", "nodev"],
        ));
    } else {
        defaults.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_opt],
        ));
    }
    let user_dests: Vec<&str> = opts
        .mounts
        .iter()
        .map(|m| m.destination.trim_end_matches('/'))
        .collect();
    let mut out: Vec<Value> = defaults
        .into_iter()
        .filter(|m| {
            let d = m["destination"].as_str().unwrap_or_default();
            !user_dests.contains(&d)
        })
        .collect();
    if let Some(init) = &opts.init {
        out.push(json!({
            "destination": "/sbin/docker-init",
            "type": "bind",
            "source": init,
            "options": ["bind", "ro", "nosuid", "nodev"],
        }));
    }
    for m in &opts.mounts {
        out.push(json!({
            "destination": m.destination,
            "type": m.typ,
            "source": m.source,
            "options": m.options,
        }));
    }
    out
}

/// Device cgroup rules Docker applies to unprivileged containers (libcontainer's
/// `AllowedDevices`): deny all, allow mknod of anything, and rwm on the standard nodes.
fn device_rules() -> Vec<Value> {
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    rules.push(json!({"allow": true, "type": "c", "access": "m"}));
    rules.push(json!({"allow": true, "type": "b", "access": "m"}));
    for (major, minor) in [
        (1, Some(3)),    // null
        (1, Some(8)),    // random
        (1, Some(7)),    // full
        (5, Some(0)),    // tty
        (1, Some(5)),    // zero
        (1, Some(9)),    // urandom
        (136, None),     // pts/*
        (5, Some(2)),    // ptmx
        (10, Some(200)), // net/tun
    ] {
        let mut r = json!({"allow": true, "type": "c", "major": major, "access": "rwm"});
        if let Some(minor) = minor {
            r["minor"] = json!(minor);
        }
        rules.push(r);
    }
    rules
}

fn resources(opts: &SpecOptions, host: &HostInfo) -> Value {
    let r = &opts.resources;
    let mut out = Map::new();
    if opts.privileged {
        out.insert("devices".into(), json!([{"allow": true, "access": "rwm"}]));
    } else {
        out.insert("devices".into(), Value::Array(device_rules()));
    }
    let mut memory = Map::new();
    if let Some(m) = r.memory.filter(|m| *m > 0) {
        memory.insert("limit".into(), json!(m));
        if host.swap_limit {
            match r.memory_swap {
                Some(s) if s != 0 => {
                    memory.insert("swap".into(), json!(s));
                }
                // Docker's default: as much swap as memory.
                _ => {
                    memory.insert("swap".into(), json!(m.saturating_mul(2)));
                }
            }
        }
    }
    if let Some(v) = r.memory_reservation.filter(|v| *v > 0) {
        memory.insert("reservation".into(), json!(v));
    }
    if let Some(v) = r.memory_swappiness.filter(|v| (0..=100).contains(v)) {
        if host.cgroup != CgroupMode::V2 {
            memory.insert("swappiness".into(), json!(v));
        }
    }
    if let Some(v) = r.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(v));
    }
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = Map::new();
    if let Some(v) = r.cpu_shares.filter(|v| *v > 0) {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(n) = r.nano_cpus.filter(|n| *n > 0) {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert(
            "quota".into(),
            json!(n.saturating_mul(period) / 1_000_000_000),
        );
    } else {
        if let Some(v) = r.cpu_period.filter(|v| *v > 0) {
            cpu.insert("period".into(), json!(v));
        }
        if let Some(v) = r.cpu_quota.filter(|v| *v != 0) {
            cpu.insert("quota".into(), json!(v));
        }
    }
    if let Some(v) = r.cpuset_cpus.as_ref().filter(|v| !v.is_empty()) {
        cpu.insert("cpus".into(), json!(v));
    }
    if let Some(v) = r.cpuset_mems.as_ref().filter(|v| !v.is_empty()) {
        cpu.insert("mems".into(), json!(v));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(v) = r.pids_limit.filter(|v| *v > 0) {
        out.insert("pids".into(), json!({"limit": v}));
    }
    if let Some(v) = r.blkio_weight.filter(|v| *v > 0) {
        out.insert("blockIO".into(), json!({"weight": v}));
    }
    Value::Object(out)
}

/// Docker's name for this build's architecture, as used by the profile's `arches`.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// libseccomp's name for the native architecture.
fn seccomp_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "x86" => "SCMP_ARCH_X86",
        "arm" => "SCMP_ARCH_ARM",
        "s390x" => "SCMP_ARCH_S390X",
        "powerpc64" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "loongarch64" => "SCMP_ARCH_LOONGARCH64",
        _ => "SCMP_ARCH_NATIVE",
    }
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn parse_kernel(s: &str) -> (u32, u32) {
    let mut it = s.split('.').filter_map(|p| p.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Resolve a Docker-format seccomp profile into the OCI `linux.seccomp` section for the
/// given capability set, following moby's `profiles/seccomp.setupSeccomp`.
pub fn seccomp_for(profile: &str, caps: &[String], kernel: (u32, u32)) -> Result<Value, SpecError> {
    let p: Value =
        serde_json::from_str(profile).map_err(|e| SpecError::SeccompProfile(e.to_string()))?;
    let obj = p
        .as_object()
        .ok_or_else(|| SpecError::SeccompProfile("profile is not a json object".into()))?;
    let default_action = obj
        .get("defaultAction")
        .and_then(Value::as_str)
        .ok_or_else(|| SpecError::SeccompProfile("missing defaultAction".into()))?;
    let mut out = Map::new();
    out.insert("defaultAction".into(), json!(default_action));
    if let Some(e) = obj.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        out.insert("defaultErrnoRet".into(), e.clone());
    }
    let native = seccomp_arch();
    let mut arches: Vec<String> = Vec::new();
    if let Some(map) = obj.get("archMap").and_then(Value::as_array) {
        for a in map {
            if a.get("architecture").and_then(Value::as_str) == Some(native) {
                arches.push(native.to_string());
                arches.extend(
                    str_list(a.get("subArchitectures").unwrap_or(&Value::Null))
                        .into_iter()
                        .map(String::from),
                );
            }
        }
    } else if let Some(list) = obj.get("architectures") {
        arches.extend(str_list(list).into_iter().map(String::from));
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), json!(arches));
    }
    if let Some(flags) = obj.get("flags").filter(|v| v.is_array()) {
        out.insert("flags".into(), flags.clone());
    }
    let arch = go_arch();
    let has_cap = |c: &str| caps.iter().any(|x| x == c);
    let mut syscalls = Vec::new();
    for call in obj
        .get("syscalls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let empty = Value::Null;
        let inc = call.get("includes").unwrap_or(&empty);
        let exc = call.get("excludes").unwrap_or(&empty);
        let inc_arches = str_list(inc.get("arches").unwrap_or(&empty));
        if !inc_arches.is_empty() && !inc_arches.contains(&arch) {
            continue;
        }
        if str_list(exc.get("arches").unwrap_or(&empty)).contains(&arch) {
            continue;
        }
        if !str_list(inc.get("caps").unwrap_or(&empty))
            .iter()
            .all(|c| has_cap(c))
        {
            continue;
        }
        if str_list(exc.get("caps").unwrap_or(&empty))
            .iter()
            .any(|c| has_cap(c))
        {
            continue;
        }
        if let Some(min) = inc.get("minKernel").and_then(Value::as_str) {
            if kernel < parse_kernel(min) {
                continue;
            }
        }
        let names: Vec<&str> = match call.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => vec![n],
            _ => str_list(call.get("names").unwrap_or(&empty)),
        };
        let action = call
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| SpecError::SeccompProfile("syscall rule without action".into()))?;
        let mut rule = json!({"names": names, "action": action});
        if let Some(e) = call.get("errnoRet").filter(|v| !v.is_null()) {
            rule["errnoRet"] = e.clone();
        }
        if let Some(args) = call.get("args").and_then(Value::as_array) {
            let args: Vec<Value> = args
                .iter()
                .map(|a| {
                    let mut o = json!({
                        "index": a.get("index").cloned().unwrap_or(json!(0)),
                        "value": a.get("value").cloned().unwrap_or(json!(0)),
                        "op": a.get("op").cloned().unwrap_or(json!("SCMP_CMP_EQ")),
                    });
                    if let Some(v2) = a.get("valueTwo").filter(|v| v.as_u64() != Some(0)) {
                        o["valueTwo"] = v2.clone();
                    }
                    o
                })
                .collect();
            if !args.is_empty() {
                rule["args"] = json!(args);
            }
        }
        syscalls.push(rule);
    }
    out.insert("syscalls".into(), Value::Array(syscalls));
    Ok(Value::Object(out))
}

/// Write `spec` as `bundle_dir/config.json` atomically (temp file, rename). Bundles are
/// runtime state in the exec root, so no fsync (see `shim::write_atomic`).
pub fn write_bundle(bundle_dir: &Path, spec: &Value) -> Result<(), SpecError> {
    let wr = |path: &Path, e| SpecError::Write {
        path: path.to_path_buf(),
        source: e,
    };
    fs::create_dir_all(bundle_dir).map_err(|e| wr(bundle_dir, e))?;
    let data = serde_json::to_vec(spec)?;
    let tmp = bundle_dir.join(".config.json.tmp");
    let dst = bundle_dir.join("config.json");
    let mut f = fs::File::create(&tmp).map_err(|e| wr(&tmp, e))?;
    f.write_all(&data).map_err(|e| wr(&tmp, e))?;
    fs::rename(&tmp, &dst).map_err(|e| wr(&dst, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostInfo {
        let mut hard_limits = BTreeMap::new();
        hard_limits.insert("nofile".to_string(), Some(20000));
        hard_limits.insert("core".to_string(), None);
        HostInfo {
            cgroup: CgroupMode::Hybrid,
            swap_limit: true,
            hard_limits,
            devices: vec![HostDevice {
                path: "/dev/sda".into(),
                typ: 'b',
                major: 8,
                minor: 0,
                mode: 0o660,
                uid: 0,
                gid: 6,
            }],
            kernel: (6, 18),
            bounding: None,
        }
    }

    fn opts() -> SpecOptions {
        SpecOptions {
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            cwd: "/".into(),
            hostname: "abc".into(),
            cgroups_path: "/berth/abc".into(),
            ..Default::default()
        }
    }

    fn names(v: &Value) -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_str().expect("str").to_string())
            .collect()
    }

    fn syscall_allowed(spec: &Value, name: &str) -> bool {
        spec["linux"]["seccomp"]["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .any(|r| {
                r["action"] == "SCMP_ACT_ALLOW" && names(&r["names"]).iter().any(|n| n == name)
            })
    }

    #[test]
    fn default_caps_are_dockers() {
        let s = generate_with(&opts(), &host()).expect("spec");
        let caps = names(&s["process"]["capabilities"]["bounding"]);
        assert_eq!(caps, DEFAULT_CAPS);
        assert_eq!(
            s["process"]["capabilities"]["effective"],
            s["process"]["capabilities"]["bounding"]
        );
    }

    #[test]
    fn cap_add_drop_normalised() {
        let c = capabilities(
            &["net_admin".into(), "CAP_SYS_TIME".into()],
            &["chown".into()],
            false,
        )
        .expect("caps");
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(c.contains(&"CAP_SYS_TIME".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        let c = capabilities(&["kill".into()], &["ALL".into()], false).expect("drop all");
        assert_eq!(c, vec!["CAP_KILL"]);
        let c = capabilities(&["all".into()], &["CAP_KILL".into()], false).expect("add all");
        assert_eq!(c.len(), ALL_CAPS.len() - 1);
        let e = capabilities(&["FOO".into()], &[], false).expect_err("unknown");
        assert_eq!(e.to_string(), "unknown capability: \"CAP_FOO\"");
    }

    #[test]
    fn caps_cut_to_bounding_set() {
        let mut h = host();
        // Everything but CAP_SYS_RESOURCE (24), as on this machine.
        h.bounding = Some(0x1ff_ffff_ffff & !(1 << 24));
        let mut o = opts();
        o.privileged = true;
        let s = generate_with(&o, &h).expect("spec");
        let caps = names(&s["process"]["capabilities"]["bounding"]);
        assert_eq!(caps.len(), ALL_CAPS.len() - 1);
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
        let s = generate_with(&opts(), &h).expect("spec");
        assert_eq!(
            names(&s["process"]["capabilities"]["bounding"]),
            DEFAULT_CAPS
        );
    }

    #[test]
    fn default_paths_and_seccomp() {
        let s = generate_with(&opts(), &host()).expect("spec");
        assert_eq!(names(&s["linux"]["maskedPaths"]), DEFAULT_MASKED_PATHS);
        assert_eq!(names(&s["linux"]["readonlyPaths"]), DEFAULT_READONLY_PATHS);
        let sc = &s["linux"]["seccomp"];
        assert_eq!(sc["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            names(&sc["architectures"]),
            vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        assert!(syscall_allowed(&s, "read"));
        assert!(syscall_allowed(&s, "arch_prctl"));
        // Needs CAP_SYS_ADMIN, which the default set lacks.
        assert!(!syscall_allowed(&s, "mount"));
        assert!(!syscall_allowed(&s, "s390_pci_mmio_read"));
        // No rule still carries Docker-only keys.
        for r in sc["syscalls"].as_array().expect("rules") {
            assert!(r.get("includes").is_none() && r.get("excludes").is_none());
        }
    }

    #[test]
    fn seccomp_follows_caps() {
        let mut o = opts();
        o.cap_add = vec!["SYS_ADMIN".into()];
        let s = generate_with(&o, &host()).expect("spec");
        assert!(syscall_allowed(&s, "mount"));
        // With SYS_ADMIN the masked clone rule and the ERRNO(38) clone3 rule drop out.
        let rules = s["linux"]["seccomp"]["syscalls"].as_array().expect("rules");
        assert!(!rules.iter().any(|r| r["errnoRet"] == 38));
        let s = generate_with(&opts(), &host()).expect("spec");
        let rules = s["linux"]["seccomp"]["syscalls"].as_array().expect("rules");
        assert!(rules.iter().any(|r| r["errnoRet"] == 38));
    }

    #[test]
    fn unconfined_and_privileged() {
        let mut o = opts();
        o.seccomp = SeccompMode::Unconfined;
        let s = generate_with(&o, &host()).expect("spec");
        assert!(s["linux"].get("seccomp").is_none());
        let mut o = opts();
        o.privileged = true;
        let s = generate_with(&o, &host()).expect("spec");
        assert!(s["linux"].get("seccomp").is_none());
        assert!(s["linux"].get("maskedPaths").is_none());
        assert!(s["linux"].get("readonlyPaths").is_none());
        assert_eq!(
            names(&s["process"]["capabilities"]["bounding"]).len(),
            ALL_CAPS.len()
        );
        assert_eq!(s["linux"]["devices"][0]["path"], "/dev/sda");
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let sys = s["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/sys")
            .expect("sys");
        assert!(names(&sys["options"]).contains(&"rw".to_string()));
    }

    #[test]
    fn mounts_defaults_shm_and_override() {
        let mut o = opts();
        o.shm_size = Some(1 << 20);
        o.mounts = vec![Mount {
            destination: "/etc/hosts".into(),
            source: "/x/hosts".into(),
            typ: "bind".into(),
            options: vec!["rbind".into(), "rprivate".into()],
        }];
        let s = generate_with(&o, &host()).expect("spec");
        let m = s["mounts"].as_array().expect("mounts");
        let dests: Vec<&str> = m
            .iter()
            .map(|m| m["destination"].as_str().expect("d"))
            .collect();
        assert_eq!(
            dests,
            vec![
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm",
                "/etc/hosts"
            ]
        );
        assert!(names(&m[6]["options"]).contains(&"size=1048576".to_string()));
        let mut o = opts();
        o.mounts = vec![Mount {
            destination: "/dev/shm".into(),
            source: "/host/shm".into(),
            typ: "bind".into(),
            options: vec!["rbind".into()],
        }];
        let s = generate_with(&o, &host()).expect("spec");
        let shm: Vec<&Value> = s["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter(|m| m["destination"] == "/dev/shm")
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0]["source"], "/host/shm");
    }

    #[test]
    fn init_prepends_and_mounts() {
        let mut o = opts();
        o.init = Some("/usr/bin/tini-static".into());
        o.args = vec!["sleep".into(), "1".into()];
        let s = generate_with(&o, &host()).expect("spec");
        assert_eq!(
            names(&s["process"]["args"]),
            vec!["/sbin/docker-init", "--", "sleep", "1"]
        );
        assert!(s["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["destination"] == "/sbin/docker-init"
                && m["source"] == "/usr/bin/tini-static"));
    }

    #[test]
    fn namespaces_follow_modes() {
        let s = generate_with(&opts(), &host()).expect("spec");
        let types: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .map(|n| n["type"].as_str().expect("type"))
            .collect();
        assert_eq!(types, vec!["mount", "pid", "uts", "ipc", "network"]);
        let mut o = opts();
        o.network = NetworkNs::Path("/run/berth/netns/x".into());
        o.pid_host = true;
        o.uts_host = true;
        o.ipc_host = true;
        let mut h = host();
        h.cgroup = CgroupMode::V2;
        let s = generate_with(&o, &h).expect("spec");
        assert_eq!(
            s["linux"]["namespaces"],
            json!([{"type": "mount"}, {"type": "network", "path": "/run/berth/netns/x"}, {"type": "cgroup"}])
        );
        assert!(s.get("hostname").is_none());
        let mut o = opts();
        o.network = NetworkNs::Host;
        let s = generate_with(&o, &host()).expect("spec");
        assert!(!s["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .any(|n| n["type"] == "network"));
    }

    #[test]
    fn rlimits_clamped_to_hard_limit() {
        let mut o = opts();
        o.ulimits = vec![
            Ulimit {
                name: "nofile".into(),
                soft: 65536,
                hard: 65536,
            },
            Ulimit {
                name: "core".into(),
                soft: 1,
                hard: 2,
            },
        ];
        let s = generate_with(&o, &host()).expect("spec");
        assert_eq!(
            s["process"]["rlimits"],
            json!([
                {"type": "RLIMIT_NOFILE", "soft": 20000, "hard": 20000},
                {"type": "RLIMIT_CORE", "soft": 1, "hard": 2}
            ])
        );
        let s = generate_with(&opts(), &host()).expect("spec");
        assert!(s["process"].get("rlimits").is_none());
        o.ulimits = vec![Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1,
        }];
        assert!(matches!(
            generate_with(&o, &host()),
            Err(SpecError::UnknownUlimit(_))
        ));
        o.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 10,
            hard: 1,
        }];
        assert!(matches!(
            generate_with(&o, &host()),
            Err(SpecError::UlimitSoftAboveHard { .. })
        ));
    }

    #[test]
    fn resources_mapping() {
        let mut o = opts();
        o.resources = Resources {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            pids_limit: Some(100),
            cpuset_cpus: Some("0".into()),
            blkio_weight: Some(300),
            ..Default::default()
        };
        let s = generate_with(&o, &host()).expect("spec");
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["cpu"]["cpus"], "0");
        assert_eq!(r["pids"]["limit"], 100);
        assert_eq!(r["blockIO"]["weight"], 300);
        assert_eq!(r["devices"][0], json!({"allow": false, "access": "rwm"}));
        let mut h = host();
        h.swap_limit = false;
        let s = generate_with(&o, &h).expect("spec");
        assert!(s["linux"]["resources"]["memory"].get("swap").is_none());
    }

    #[test]
    fn user_and_process_fields() {
        let mut o = opts();
        o.user = ResolvedUser {
            uid: 33,
            gid: 33,
            additional_gids: vec![29],
            home: "/w".into(),
        };
        o.terminal = true;
        o.oom_score_adj = Some(100);
        o.no_new_privileges = true;
        o.readonly_rootfs = true;
        o.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        assert!(generate_with(&o, &host()).expect("spec")["linux"]
            .get("rootfsPropagation")
            .is_none());
        o.rootfs_propagation = Some("rslave".into());
        let s = generate_with(&o, &host()).expect("spec");
        assert_eq!(s["linux"]["rootfsPropagation"], "rslave");
        assert_eq!(
            s["process"]["user"],
            json!({"uid": 33, "gid": 33, "additionalGids": [29]})
        );
        assert_eq!(s["process"]["terminal"], true);
        assert_eq!(s["process"]["oomScoreAdj"], 100);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        assert_eq!(s["root"], json!({"path": "/r", "readonly": true}));
        assert_eq!(s["linux"]["sysctl"]["net.ipv4.ip_forward"], "1");
        assert_eq!(s["linux"]["cgroupsPath"], "/berth/abc");
        assert_eq!(s["hostname"], "abc");
    }

    #[test]
    fn empty_args_rejected() {
        let mut o = opts();
        o.args.clear();
        assert!(matches!(
            generate_with(&o, &host()),
            Err(SpecError::EmptyArgs)
        ));
    }

    #[test]
    fn write_bundle_is_atomic_json() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = generate_with(&opts(), &host()).expect("spec");
        write_bundle(d.path(), &s).expect("write");
        let back: Value =
            serde_json::from_slice(&fs::read(d.path().join("config.json")).expect("read"))
                .expect("json");
        assert_eq!(back, s);
        assert!(!d.path().join(".config.json.tmp").exists());
    }
}
