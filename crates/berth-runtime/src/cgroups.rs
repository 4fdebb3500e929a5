//! cgroup layout detection, container stats, live resource updates and cleanup.
//!
//! berth never creates container cgroups itself: the OCI runtime does, at the spec's
//! `cgroupsPath` (e.g. `/berth/<id>`) under every v1 hierarchy or under the unified v2 tree.
//! This module reads and writes the files there. Hierarchies are located through
//! `/proc/self/mountinfo` rather than assumed, because hosts differ (`cpu` and `cpuacct` are
//! separate mounts on this machine, `cpu,cpuacct` on most others).
//!
//! All file access goes through [`CgroupFs`], whose mount table can point at a temporary
//! directory, so the parsing and update rules are unit-tested without root.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::spec::Resources;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupMode {
    /// Only v1 hierarchies.
    V1,
    /// Unified hierarchy at /sys/fs/cgroup.
    V2,
    /// v1 hierarchies plus a cgroup2 mount (usually /sys/fs/cgroup/unified).
    Hybrid,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "cgroup hybrid mode with controllers on the unified hierarchy ({controllers}) is not \
         supported by the OCI runtime; mount them as v1 hierarchies: {fix}"
    )]
    HybridControllers { controllers: String, fix: String },
    #[error("no cgroup hierarchy found for controller {0}")]
    NoController(String),
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
}

/// A snapshot of a container's resource usage, with Docker's stats semantics.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CgroupStats {
    /// Total CPU time in nanoseconds.
    pub cpu_total: u64,
    pub cpu_percpu: Vec<u64>,
    /// CPU time in user and kernel mode, nanoseconds.
    pub cpu_user: u64,
    pub cpu_kernel: u64,
    /// Host-wide CPU time in nanoseconds (Docker's `system_cpu_usage`).
    pub system_cpu: u64,
    pub online_cpus: u32,
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    pub memory_limit: u64,
    pub memory_stats: BTreeMap<String, u64>,
    pub pids_current: u64,
    /// `None` when unlimited.
    pub pids_limit: Option<u64>,
    pub blkio_read_bytes: u64,
    pub blkio_write_bytes: u64,
    /// CFS bandwidth: enforcement periods, periods throttled, time throttled (ns).
    #[serde(default)]
    pub cpu_periods: u64,
    #[serde(default)]
    pub cpu_throttled_periods: u64,
    #[serde(default)]
    pub cpu_throttled_time: u64,
    /// Bytes per device and operation (Docker's `io_service_bytes_recursive`).
    #[serde(default)]
    pub blkio_service_bytes: Vec<BlkioEntry>,
    /// Operations per device and operation (Docker's `io_serviced_recursive`).
    #[serde(default)]
    pub blkio_serviced: Vec<BlkioEntry>,
}

/// One per-device blkio counter, as Docker's `BlkioStatEntry`. v1 keeps the kernel's
/// operation names (`Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`); v2 has only
/// `read` and `write`, which is what dockerd reports there too.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// Parses a v1 `blkio.*` file: `MAJ:MIN Op value` lines (the closing `Total n` line,
/// which has no device, is skipped as dockerd's libcontainer does).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [dev, op, v] = f.as_slice() else {
            continue;
        };
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor), Ok(value)) = (maj.parse(), min.parse(), v.parse()) else {
            continue;
        };
        out.push(BlkioEntry {
            major,
            minor,
            op: op.to_string(),
            value,
        });
    }
    out
}

/// Parses v2 `io.stat` (`MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..` lines) into service
/// bytes and serviced operations.
pub fn parse_io_stat_v2(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "read"),
                "wbytes" => (&mut bytes, "write"),
                "rios" => (&mut ios, "read"),
                "wios" => (&mut ios, "write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ios)
}

/// The cgroup mounts of a host (or of a fake tree in tests).
#[derive(Debug, Clone)]
pub struct CgroupFs {
    /// v1 hierarchies: mount point and the controllers (or `name=...`) it carries.
    pub v1: Vec<(PathBuf, Vec<String>)>,
    /// The cgroup2 mount, if any.
    pub v2: Option<PathBuf>,
    /// Where `/proc/stat` is read for the host CPU time.
    pub proc_stat: PathBuf,
}

/// A procfs file whole. Its size reads as 0, so `fs::read_to_string` starts with a 32-byte
/// buffer and doubles it: eight reads for this machine's mountinfo, on the shim's exit path.
fn read_proc(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut s = String::with_capacity(16 << 10);
    fs::File::open(path)?.read_to_string(&mut s)?;
    Ok(s)
}

impl CgroupFs {
    /// Read the host's cgroup mounts from /proc/self/mountinfo.
    pub fn host() -> CgroupFs {
        let info = read_proc("/proc/self/mountinfo").unwrap_or_default();
        let mut fsys = CgroupFs::from_mountinfo(&info);
        fsys.proc_stat = PathBuf::from("/proc/stat");
        fsys
    }

    /// Parse mountinfo text (fields: id parent dev root mountpoint opts ... - fstype src superopts).
    pub fn from_mountinfo(info: &str) -> CgroupFs {
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in info.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mp = match left.split(' ').nth(4) {
                Some(m) => PathBuf::from(m.replace("\\040", " ")),
                None => continue,
            };
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default();
            let superopts = r.nth(1).unwrap_or_default();
            match fstype {
                // Prefer the canonical location if several exist.
                "cgroup2" if v2.is_none() || mp == Path::new("/sys/fs/cgroup") => {
                    v2 = Some(mp);
                }
                "cgroup" => {
                    let ctrls = superopts
                        .split(',')
                        .filter(|o| {
                            !matches!(*o, "rw" | "ro" | "relatime" | "noexec" | "nosuid" | "nodev")
                                && !o.starts_with("release_agent")
                        })
                        .map(String::from)
                        .collect();
                    v1.push((mp, ctrls));
                }
                _ => {}
            }
        }
        CgroupFs {
            v1,
            v2,
            proc_stat: PathBuf::from("/proc/stat"),
        }
    }

    pub fn mode(&self) -> CgroupMode {
        match (&self.v2, self.v1.is_empty()) {
            (Some(_), true) => CgroupMode::V2,
            (Some(_), false) => CgroupMode::Hybrid,
            (None, _) => CgroupMode::V1,
        }
    }

    /// Mount point of the v1 hierarchy carrying `controller`.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(_, c)| c.iter().any(|x| x == controller))
            .map(|(p, _)| p.as_path())
    }

    fn v1_dir(&self, controller: &str, cg: &str) -> Option<PathBuf> {
        self.v1_mount(controller).map(|m| join(m, cg))
    }

    /// Container stats; controllers that are missing leave their fields at zero.
    pub fn stats(&self, cgroups_path: &str) -> Result<CgroupStats, CgroupError> {
        let mut s = CgroupStats {
            system_cpu: system_cpu(&self.proc_stat),
            ..Default::default()
        };
        if self.mode() == CgroupMode::V2 {
            let dir = join(
                self.v2.as_deref().expect("v2 mode has a v2 mount"),
                cgroups_path,
            );
            if !dir.is_dir() {
                return Err(CgroupError::Read {
                    path: dir,
                    source: io::Error::from(io::ErrorKind::NotFound),
                });
            }
            let cpu = read_kv(&dir.join("cpu.stat"))?;
            s.cpu_periods = cpu.get("nr_periods").copied().unwrap_or(0);
            s.cpu_throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
            s.cpu_throttled_time = cpu.get("throttled_usec").copied().unwrap_or(0) * 1000;
            s.cpu_total = cpu.get("usage_usec").copied().unwrap_or(0) * 1000;
            s.cpu_user = cpu.get("user_usec").copied().unwrap_or(0) * 1000;
            s.cpu_kernel = cpu.get("system_usec").copied().unwrap_or(0) * 1000;
            s.memory_usage = read_u64_opt(&dir.join("memory.current"))?.unwrap_or(0);
            s.memory_max_usage = read_u64_opt(&dir.join("memory.peak"))?.unwrap_or(0);
            s.memory_limit = read_u64_opt(&dir.join("memory.max"))?.unwrap_or(u64::MAX);
            s.memory_stats = read_kv(&dir.join("memory.stat"))?;
            s.pids_current = read_u64_opt(&dir.join("pids.current"))?.unwrap_or(0);
            s.pids_limit = read_u64_opt(&dir.join("pids.max"))?;
            let io_stat = read_opt(&dir.join("io.stat"))?.unwrap_or_default();
            (s.blkio_service_bytes, s.blkio_serviced) = parse_io_stat_v2(&io_stat);
            for line in io_stat.lines() {
                for kv in line.split_whitespace().skip(1) {
                    match kv.split_once('=') {
                        Some(("rbytes", v)) => s.blkio_read_bytes += v.parse().unwrap_or(0),
                        Some(("wbytes", v)) => s.blkio_write_bytes += v.parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
        } else {
            let mut found = false;
            if let Some(dir) = self.v1_dir("cpuacct", cgroups_path).filter(|d| d.is_dir()) {
                found = true;
                s.cpu_total = read_u64_opt(&dir.join("cpuacct.usage"))?.unwrap_or(0);
                s.cpu_percpu = read_opt(&dir.join("cpuacct.usage_percpu"))?
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                // cpuacct.stat is in USER_HZ ticks; Docker reports nanoseconds.
                let st = read_kv(&dir.join("cpuacct.stat"))?;
                let tick = 1_000_000_000 / clock_ticks();
                s.cpu_user = st.get("user").copied().unwrap_or(0) * tick;
                s.cpu_kernel = st.get("system").copied().unwrap_or(0) * tick;
            }
            if let Some(dir) = self.v1_dir("cpu", cgroups_path).filter(|d| d.is_dir()) {
                let st = read_kv(&dir.join("cpu.stat"))?;
                s.cpu_periods = st.get("nr_periods").copied().unwrap_or(0);
                s.cpu_throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
                s.cpu_throttled_time = st.get("throttled_time").copied().unwrap_or(0);
            }
            if let Some(dir) = self.v1_dir("memory", cgroups_path).filter(|d| d.is_dir()) {
                found = true;
                s.memory_usage = read_u64_opt(&dir.join("memory.usage_in_bytes"))?.unwrap_or(0);
                s.memory_max_usage =
                    read_u64_opt(&dir.join("memory.max_usage_in_bytes"))?.unwrap_or(0);
                s.memory_limit =
                    read_u64_opt(&dir.join("memory.limit_in_bytes"))?.unwrap_or(u64::MAX);
                s.memory_stats = read_kv(&dir.join("memory.stat"))?;
            }
            if let Some(dir) = self.v1_dir("pids", cgroups_path).filter(|d| d.is_dir()) {
                found = true;
                s.pids_current = read_u64_opt(&dir.join("pids.current"))?.unwrap_or(0);
                s.pids_limit = read_u64_opt(&dir.join("pids.max"))?;
            }
            if let Some(dir) = self.v1_dir("blkio", cgroups_path).filter(|d| d.is_dir()) {
                let path = dir.join("blkio.throttle.io_service_bytes");
                let text = read_opt(&path)?.unwrap_or_default();
                s.blkio_service_bytes = parse_blkio_v1(&text);
                s.blkio_serviced = parse_blkio_v1(
                    &read_opt(&dir.join("blkio.throttle.io_serviced"))?.unwrap_or_default(),
                );
                for line in text.lines() {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if let [_, op, v] = f.as_slice() {
                        match *op {
                            "Read" => s.blkio_read_bytes += v.parse().unwrap_or(0),
                            "Write" => s.blkio_write_bytes += v.parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
            }
            if !found {
                return Err(CgroupError::Read {
                    path: PathBuf::from(cgroups_path),
                    source: io::Error::from(io::ErrorKind::NotFound),
                });
            }
        }
        s.online_cpus = if s.cpu_percpu.is_empty() {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        } else {
            s.cpu_percpu.len() as u32
        };
        Ok(s)
    }

    /// Apply new limits to a live container (`docker update`).
    pub fn update(&self, cgroups_path: &str, r: &Resources) -> Result<(), CgroupError> {
        if self.mode() == CgroupMode::V2 {
            let dir = join(
                self.v2.as_deref().expect("v2 mode has a v2 mount"),
                cgroups_path,
            );
            if let Some(m) = r.memory {
                write(&dir.join("memory.max"), &limit_v2(m))?;
                if let Some(sw) = r.memory_swap {
                    // v2 limits swap alone; Docker's value is memory + swap.
                    let v = if sw < 0 {
                        "max".into()
                    } else {
                        (sw - m).max(0).to_string()
                    };
                    write(&dir.join("memory.swap.max"), &v)?;
                }
            }
            if let Some(v) = r.memory_reservation {
                write(&dir.join("memory.low"), &limit_v2(v))?;
            }
            if let Some(shares) = r.cpu_shares.filter(|s| *s > 0) {
                write(
                    &dir.join("cpu.weight"),
                    &shares_to_weight(shares).to_string(),
                )?;
            }
            if let Some((quota, period)) = cpu_quota_period(r) {
                let q = if quota <= 0 {
                    "max".to_string()
                } else {
                    quota.to_string()
                };
                write(&dir.join("cpu.max"), &format!("{q} {period}"))?;
            }
            if let Some(v) = &r.cpuset_cpus {
                write(&dir.join("cpuset.cpus"), v)?;
            }
            if let Some(v) = &r.cpuset_mems {
                write(&dir.join("cpuset.mems"), v)?;
            }
            if let Some(p) = r.pids_limit {
                write(&dir.join("pids.max"), &limit_v2(p))?;
            }
            if let Some(w) = r.blkio_weight.filter(|w| *w > 0) {
                // blkio weight 10..1000 maps onto io.weight 1..10000.
                let iow = 1 + (u64::from(w).saturating_sub(10) * 9999) / 990;
                write(&dir.join("io.weight"), &format!("default {iow}"))?;
            }
            return Ok(());
        }
        let dir = |c: &str| {
            self.v1_dir(c, cgroups_path)
                .ok_or_else(|| CgroupError::NoController(c.to_string()))
        };
        if let Some(m) = r.memory {
            let d = dir("memory")?;
            let mem = d.join("memory.limit_in_bytes");
            let memsw = d.join("memory.memsw.limit_in_bytes");
            let m_v = limit_v1(m);
            match r.memory_swap {
                Some(sw) if memsw.exists() => {
                    // memsw must stay >= memory at every step: the order depends on direction.
                    let sw_v = limit_v1(sw);
                    if write(&mem, &m_v).is_err() {
                        write(&memsw, &sw_v)?;
                        write(&mem, &m_v)?;
                    } else {
                        write(&memsw, &sw_v)?;
                    }
                }
                _ => {
                    if let Err(e) = write(&mem, &m_v) {
                        // A lower memory with the old memsw is fine; a higher one needs memsw
                        // raised first. Docker's default keeps swap == memory then.
                        if memsw.exists() {
                            write(&memsw, &limit_v1(m.saturating_mul(2)))?;
                            write(&mem, &m_v)?;
                        } else {
                            return Err(e);
                        }
                    }
                }
            }
        }
        if let Some(v) = r.memory_reservation {
            write(
                &dir("memory")?.join("memory.soft_limit_in_bytes"),
                &limit_v1(v),
            )?;
        }
        if let Some(v) = r.cpu_shares.filter(|s| *s > 0) {
            write(&dir("cpu")?.join("cpu.shares"), &v.to_string())?;
        }
        if let Some((quota, period)) = cpu_quota_period(r) {
            let d = dir("cpu")?;
            write(&d.join("cpu.cfs_period_us"), &period.to_string())?;
            let q = if quota <= 0 { -1 } else { quota };
            write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
        }
        if let Some(v) = &r.cpuset_cpus {
            write(&dir("cpuset")?.join("cpuset.cpus"), v)?;
        }
        if let Some(v) = &r.cpuset_mems {
            write(&dir("cpuset")?.join("cpuset.mems"), v)?;
        }
        if let Some(p) = r.pids_limit {
            let v = if p <= 0 {
                "max".to_string()
            } else {
                p.to_string()
            };
            write(&dir("pids")?.join("pids.max"), &v)?;
        }
        if let Some(w) = r.blkio_weight.filter(|w| *w > 0) {
            write(&dir("blkio")?.join("blkio.weight"), &w.to_string())?;
        }
        Ok(())
    }

    /// Remove the container's cgroup from every hierarchy, children first. Missing
    /// directories are fine; a cgroup that still has processes fails with EBUSY.
    pub fn remove(&self, cgroups_path: &str) -> Result<(), CgroupError> {
        let mut roots: Vec<PathBuf> = self.v1.iter().map(|(p, _)| join(p, cgroups_path)).collect();
        if let Some(v2) = &self.v2 {
            roots.push(join(v2, cgroups_path));
        }
        let mut first_err = None;
        for root in roots {
            if let Err(e) = rmdir_tree(&root) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// True if any hierarchy still has a directory for `cgroups_path`.
    pub fn exists(&self, cgroups_path: &str) -> bool {
        self.v1
            .iter()
            .map(|(p, _)| join(p, cgroups_path))
            .chain(self.v2.iter().map(|p| join(p, cgroups_path)))
            .any(|d| d.is_dir())
    }
}

fn rmdir_tree(dir: &Path) -> Result<(), CgroupError> {
    // A container's cgroup seldom has children: one rmdir, and the listing (a kernfs
    // readdir of some 30 control files, per hierarchy) only when it fails.
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Remove {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    // cgroupfs directories contain only control files (removed with the directory) and child
    // cgroups, which must go first.
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            rmdir_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CgroupError::Remove {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// `--cpus` wins over `--cpu-quota`; period defaults to 100ms like Docker.
fn cpu_quota_period(r: &Resources) -> Option<(i64, u64)> {
    if let Some(n) = r.nano_cpus.filter(|n| *n > 0) {
        return Some((n.saturating_mul(100_000) / 1_000_000_000, 100_000));
    }
    match (r.cpu_quota, r.cpu_period) {
        (None, None) => None,
        (q, p) => Some((q.unwrap_or(-1), p.filter(|p| *p > 0).unwrap_or(100_000))),
    }
}

/// runc's conversion from v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn limit_v1(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

fn limit_v2(v: i64) -> String {
    if v <= 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

fn join(mount: &Path, cg: &str) -> PathBuf {
    mount.join(cg.trim_start_matches('/'))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A single number; `max` (v2 unlimited) is `None`.
fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    let Some(s) = read_opt(path)? else {
        return Ok(None);
    };
    let t = s.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: t.to_string(),
    })
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
fn read_kv(path: &Path) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(read_opt(path)?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Host CPU time in nanoseconds from the `cpu` line of /proc/stat, as Docker computes it.
fn system_cpu(proc_stat: &Path) -> u64 {
    let text = fs::read_to_string(proc_stat).unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks * (1_000_000_000 / clock_ticks())
}

/// Hides the kernel's cgroup migration latency from container start-up.
///
/// Moving a process between cgroups takes the global `cgroup_threadgroup_rwsem` for writing,
/// and a writer that finds it idle first waits out an RCU grace period (`rcu_sync_enter`):
/// 9 to 16 ms on this machine, the largest single step of `crun create`, spent asleep. A
/// writer arriving within a grace period of the previous one skips that wait. So when a
/// container (or exec) is about to start, berthd rewrites its own membership in one
/// hierarchy, a move into the cgroup it is already in, on a spare thread: the wait then
/// overlaps with the rest of the start (network, bundle, shim) and the runtime's real move of
/// the init finds the lock warm. Nothing changes for any process; errors are ignored, as the
/// only loss is the latency this tries to hide.
#[derive(Debug, Clone, Default)]
pub struct MigrationWarmer {
    procs: Option<PathBuf>,
}

impl MigrationWarmer {
    /// The `cgroup.procs` file of this process's own cgroup in the first hierarchy found.
    pub fn host() -> MigrationWarmer {
        let fsys = CgroupFs::host();
        let own = read_proc("/proc/self/cgroup").unwrap_or_default();
        MigrationWarmer {
            procs: own_procs_file(&fsys, &own),
        }
    }

    /// The file written, if any.
    pub fn procs_file(&self) -> Option<&Path> {
        self.procs.as_deref()
    }

    /// Blocking: the write waits out the grace period. Run it on a spare thread.
    pub fn warm(&self) {
        if let Some(p) = &self.procs {
            let _ = fs::write(p, std::process::id().to_string());
        }
    }

    /// Blocking: warm, then keep the lock warm with a (then cheap) write every 2 ms, until
    /// `stop` is set or `max` has passed. The lock cools down one grace period after the last
    /// writer, and the runtime's move comes an unknown few milliseconds after the first.
    pub fn keep_warm(&self, stop: &std::sync::atomic::AtomicBool, max: std::time::Duration) {
        if self.procs.is_none() {
            return;
        }
        let t0 = std::time::Instant::now();
        loop {
            self.warm();
            if stop.load(std::sync::atomic::Ordering::Relaxed) || t0.elapsed() >= max {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Map `/proc/self/cgroup` lines (`id:controllers:/path`) to a `cgroup.procs` file: a v1
/// hierarchy with controllers when there is one, else the unified tree.
fn own_procs_file(fsys: &CgroupFs, proc_self_cgroup: &str) -> Option<PathBuf> {
    let mut v2 = None;
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        if ctrls.is_empty() {
            v2 = fsys.v2.as_ref().map(|m| join(m, path).join("cgroup.procs"));
            continue;
        }
        let first = ctrls.split(',').next().unwrap_or_default();
        if let Some(m) = fsys.v1_mount(first) {
            let f = join(m, path).join("cgroup.procs");
            if f.exists() {
                return Some(f);
            }
        }
    }
    v2.filter(|f| f.exists())
}

/// The host's cgroup mode.
pub fn detect() -> CgroupMode {
    CgroupFs::host().mode()
}

/// Mount point of the host's v1 hierarchy for `controller`.
pub fn v1_mount(controller: &str) -> Option<PathBuf> {
    CgroupFs::host().v1_mount(controller).map(Path::to_path_buf)
}

/// Fail with the exact fix when the OCI runtime would refuse this host's cgroup layout:
/// crun rejects hybrid mode while the cgroup2 mount offers any controller.
pub fn check_runtime_compat() -> Result<(), CgroupError> {
    check_compat(&CgroupFs::host())
}

fn check_compat(fsys: &CgroupFs) -> Result<(), CgroupError> {
    if fsys.mode() != CgroupMode::Hybrid {
        return Ok(());
    }
    let Some(v2) = &fsys.v2 else { return Ok(()) };
    let path = v2.join("cgroup.controllers");
    let ctrls = read_opt(&path)?.unwrap_or_default();
    let ctrls: Vec<&str> = ctrls.split_whitespace().collect();
    if ctrls.is_empty() {
        return Ok(());
    }
    let base = fsys
        .v1
        .first()
        .and_then(|(p, _)| p.parent())
        .unwrap_or(Path::new("/sys/fs/cgroup"))
        .to_path_buf();
    let fix = ctrls
        .iter()
        .map(|c| {
            let d = base.join(c);
            format!(
                "mkdir -p {d} && mount -t cgroup -o {c} cgroup {d}",
                d = d.display()
            )
        })
        .collect::<Vec<_>>()
        .join(" && ");
    Err(CgroupError::HybridControllers {
        controllers: ctrls.join(" "),
        fix,
    })
}

/// Stats for the container cgroup at `cgroups_path` on this host.
pub fn stats(cgroups_path: &str) -> Result<CgroupStats, CgroupError> {
    CgroupFs::host().stats(cgroups_path)
}

/// Live update of memory / cpu / pids / blkio limits on this host.
pub fn update(cgroups_path: &str, resources: &Resources) -> Result<(), CgroupError> {
    CgroupFs::host().update(cgroups_path, resources)
}

/// Remove leftovers of `cgroups_path` from every hierarchy on this host.
pub fn remove(cgroups_path: &str) -> Result<(), CgroupError> {
    CgroupFs::host().remove(cgroups_path)
}

/// Whether the container's memory cgroup recorded an OOM kill (v1 `memory.oom_control`,
/// v2 `memory.events`).
pub fn oom_killed(cgroups_path: &str) -> bool {
    let f = CgroupFs::host();
    let (path, key) = if f.mode() == CgroupMode::V2 {
        match &f.v2 {
            Some(v2) => (join(v2, cgroups_path).join("memory.events"), "oom_kill"),
            None => return false,
        }
    } else {
        match f.v1_dir("memory", cgroups_path) {
            Some(d) => (d.join("memory.oom_control"), "oom_kill"),
            None => return false,
        }
    };
    read_kv(&path)
        .map(|kv| kv.get(key).copied().unwrap_or(0) > 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmdir_tree_removes_children_first_and_ignores_missing() {
        let t = tempfile::tempdir().expect("tmp");
        let top = t.path().join("c");
        fs::create_dir_all(top.join("a/b")).expect("mkdir");
        fs::create_dir_all(top.join("d")).expect("mkdir");
        rmdir_tree(&top).expect("remove tree");
        assert!(!top.exists());
        rmdir_tree(&top).expect("a missing directory is fine");
        // Something rmdir cannot take is an error naming the directory.
        fs::create_dir_all(&top).expect("mkdir");
        fs::write(top.join("f"), b"x").expect("file");
        let err = rmdir_tree(&top).expect_err("not empty").to_string();
        assert!(err.contains(&top.display().to_string()), "{err}");
    }

    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_mountinfo() {
        let f = CgroupFs::from_mountinfo(MOUNTINFO);
        assert_eq!(f.mode(), CgroupMode::Hybrid);
        assert_eq!(
            f.v1_mount("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpuacct"))
        );
        assert_eq!(
            f.v1_mount("name=systemd"),
            Some(Path::new("/sys/fs/cgroup/systemd"))
        );
        assert_eq!(f.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        let v2 = CgroupFs::from_mountinfo(
            "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(v2.mode(), CgroupMode::V2);
        assert_eq!(CgroupFs::from_mountinfo("").mode(), CgroupMode::V1);
    }

    fn fake(dir: &Path, v2: bool) -> CgroupFs {
        if v2 {
            CgroupFs {
                v1: vec![],
                v2: Some(dir.join("unified")),
                proc_stat: dir.join("stat"),
            }
        } else {
            let v1 = ["cpu", "cpuacct", "memory", "pids", "blkio"]
                .iter()
                .map(|c| (dir.join(c), vec![c.to_string()]))
                .collect();
            CgroupFs {
                v1,
                v2: Some(dir.join("unified")),
                proc_stat: dir.join("stat"),
            }
        }
    }

    #[test]
    fn warmer_picks_own_cgroup_procs_file() {
        let dir = tempfile::tempdir().unwrap();
        let fsys = fake(dir.path(), false);
        let own = "5:pids:/svc\n0::/svc\n";
        // Not there (no such cgroup dir): nothing to write.
        assert_eq!(own_procs_file(&fsys, own), None);
        let mount = fsys.v1_mount("pids").unwrap().to_path_buf();
        std::fs::create_dir_all(mount.join("svc")).unwrap();
        std::fs::write(mount.join("svc/cgroup.procs"), "").unwrap();
        assert_eq!(
            own_procs_file(&fsys, own),
            Some(mount.join("svc/cgroup.procs"))
        );
        let v2 = fake(dir.path(), true);
        let m2 = v2.v2.clone().unwrap();
        std::fs::create_dir_all(m2.join("svc")).unwrap();
        std::fs::write(m2.join("svc/cgroup.procs"), "").unwrap();
        assert_eq!(
            own_procs_file(&v2, "0::/svc\n"),
            Some(m2.join("svc/cgroup.procs"))
        );
        let w = MigrationWarmer {
            procs: own_procs_file(&v2, "0::/svc\n"),
        };
        w.warm();
        assert_eq!(
            std::fs::read_to_string(m2.join("svc/cgroup.procs")).unwrap(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn hybrid_with_controllers_reports_fix() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = fake(d.path(), false);
        fs::create_dir_all(d.path().join("unified")).expect("mkdir");
        fs::write(d.path().join("unified/cgroup.controllers"), "").expect("write");
        check_compat(&f).expect("empty controllers are fine");
        fs::write(d.path().join("unified/cgroup.controllers"), "hugetlb\n").expect("write");
        let e = check_compat(&f).expect_err("hybrid").to_string();
        let want = format!(
            "mkdir -p {0}/hugetlb && mount -t cgroup -o hugetlb cgroup {0}/hugetlb",
            d.path().display()
        );
        assert!(e.contains(&want), "{e}");
    }

    #[test]
    fn v1_stats_and_update() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = fake(d.path(), false);
        let cg = "/berth/abc";
        for c in ["cpu", "cpuacct", "memory", "pids", "blkio"] {
            fs::create_dir_all(d.path().join(c).join("berth/abc")).expect("mkdir");
        }
        let p = |c: &str, file: &str| d.path().join(c).join("berth/abc").join(file);
        fs::write(d.path().join("stat"), "cpu  10 0 10 80 0 0 0 0 0 0\n").expect("w");
        fs::write(p("cpuacct", "cpuacct.usage"), "5000\n").expect("w");
        fs::write(p("cpuacct", "cpuacct.usage_percpu"), "2000 3000 \n").expect("w");
        fs::write(p("cpuacct", "cpuacct.stat"), "user 1\nsystem 2\n").expect("w");
        fs::write(p("memory", "memory.usage_in_bytes"), "4096\n").expect("w");
        fs::write(
            p("memory", "memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .expect("w");
        fs::write(p("memory", "memory.stat"), "cache 10\nrss 20\n").expect("w");
        fs::write(p("memory", "memory.memsw.limit_in_bytes"), "-1\n").expect("w");
        fs::write(p("pids", "pids.current"), "3\n").expect("w");
        fs::write(p("pids", "pids.max"), "max\n").expect("w");
        fs::write(
            p("blkio", "blkio.throttle.io_service_bytes"),
            "8:0 Read 100\n8:0 Write 50\n8:0 Total 150\nTotal 150\n",
        )
        .expect("w");
        fs::write(
            p("cpu", "cpu.stat"),
            "nr_periods 40\nnr_throttled 7\nthrottled_time 123456\n",
        )
        .expect("w");
        fs::write(
            p("blkio", "blkio.throttle.io_serviced"),
            "8:0 Read 4\n8:0 Write 2\nTotal 6\n",
        )
        .expect("w");
        let s = f.stats(cg).expect("stats");
        assert_eq!(
            (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_time),
            (40, 7, 123456)
        );
        let entry = |op: &str, value| BlkioEntry {
            major: 8,
            minor: 0,
            op: op.into(),
            value,
        };
        assert_eq!(
            s.blkio_service_bytes,
            vec![entry("Read", 100), entry("Write", 50), entry("Total", 150)]
        );
        assert_eq!(s.blkio_serviced, vec![entry("Read", 4), entry("Write", 2)]);
        assert_eq!(s.cpu_total, 5000);
        assert_eq!(s.cpu_percpu, vec![2000, 3000]);
        assert_eq!(s.online_cpus, 2);
        assert_eq!(s.cpu_user, 1_000_000_000 / clock_ticks());
        assert_eq!(s.system_cpu, 100 * (1_000_000_000 / clock_ticks()));
        assert_eq!(s.memory_usage, 4096);
        assert_eq!(s.memory_stats.get("rss"), Some(&20));
        assert_eq!((s.pids_current, s.pids_limit), (3, None));
        assert_eq!((s.blkio_read_bytes, s.blkio_write_bytes), (100, 50));

        let r = Resources {
            memory: Some(1 << 20),
            memory_swap: Some(2 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(-1),
            cpu_shares: Some(256),
            ..Default::default()
        };
        f.update(cg, &r).expect("update");
        let rd = |c: &str, file: &str| fs::read_to_string(p(c, file)).expect("read");
        assert_eq!(rd("memory", "memory.limit_in_bytes"), "1048576");
        assert_eq!(rd("memory", "memory.memsw.limit_in_bytes"), "2097152");
        assert_eq!(rd("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(rd("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(rd("cpu", "cpu.shares"), "256");
        assert_eq!(rd("pids", "pids.max"), "max");

        // cgroupfs removes control files with their directory; a plain fs needs them gone.
        for c in ["cpu", "cpuacct", "memory", "pids", "blkio"] {
            let dir = d.path().join(c).join("berth/abc");
            for e in fs::read_dir(&dir).expect("ls") {
                fs::remove_file(e.expect("entry").path()).expect("rm");
            }
        }
        fs::create_dir_all(d.path().join("memory/berth/abc/child")).expect("mkdir");
        assert!(f.exists(cg));
        f.remove(cg).expect("remove");
        assert!(!f.exists(cg));
        f.remove(cg).expect("remove twice is fine");
    }

    #[test]
    fn v2_stats_and_update() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = fake(d.path(), true);
        let dir = d.path().join("unified/berth/x");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 7\nuser_usec 3\nsystem_usec 4\nnr_periods 9\nnr_throttled 2\nthrottled_usec 5\n",
        )
        .expect("w");
        fs::write(dir.join("memory.current"), "8192\n").expect("w");
        fs::write(dir.join("memory.max"), "max\n").expect("w");
        fs::write(dir.join("pids.current"), "1\n").expect("w");
        fs::write(dir.join("pids.max"), "50\n").expect("w");
        fs::write(
            dir.join("io.stat"),
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
        )
        .expect("w");
        let s = f.stats("/berth/x").expect("stats");
        assert_eq!((s.cpu_total, s.cpu_user, s.cpu_kernel), (7000, 3000, 4000));
        assert_eq!((s.memory_usage, s.memory_limit), (8192, u64::MAX));
        assert_eq!((s.pids_current, s.pids_limit), (1, Some(50)));
        assert_eq!((s.blkio_read_bytes, s.blkio_write_bytes), (10, 20));
        assert_eq!(
            (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_time),
            (9, 2, 5000)
        );
        let e = |op: &str, value| BlkioEntry {
            major: 8,
            minor: 0,
            op: op.into(),
            value,
        };
        assert_eq!(s.blkio_service_bytes, vec![e("read", 10), e("write", 20)]);
        assert_eq!(s.blkio_serviced, vec![e("read", 1), e("write", 2)]);
        let r = Resources {
            memory: Some(100),
            memory_swap: Some(300),
            cpu_quota: Some(20000),
            cpu_shares: Some(1024),
            pids_limit: Some(0),
            ..Default::default()
        };
        f.update("/berth/x", &r).expect("update");
        let rd = |file: &str| fs::read_to_string(dir.join(file)).expect("read");
        assert_eq!(rd("memory.max"), "100");
        assert_eq!(rd("memory.swap.max"), "200");
        assert_eq!(rd("cpu.max"), "20000 100000");
        assert_eq!(rd("cpu.weight"), shares_to_weight(1024).to_string());
        assert_eq!(rd("pids.max"), "max");
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10000);
    }

    #[test]
    fn missing_cgroup_is_an_error() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(fake(d.path(), false).stats("/nope").is_err());
        assert!(fake(d.path(), true).stats("/nope").is_err());
    }
}
