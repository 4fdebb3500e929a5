//! The shim: one small supervisor process per container, and everything that talks to it.
//!
//! # Why a shim
//!
//! berthd must be restartable (and killable) without taking containers down, and container
//! creation must happen in a fresh single-threaded process (see FIELD-NOTES: forking from a
//! multi-threaded daemon races on process-wide state). So, like containerd-shim and conmon,
//! `berth-shim` is double-forked away from berthd, becomes a child subreaper, drives the OCI
//! runtime CLI (`crun create/start/kill/pause/resume/exec/delete`), owns the container's stdio,
//! writes the json-file log, reaps the init (which the runtime reparents to it) and records
//! the exit status in `exit.json` before anyone asks.
//!
//! # Files in `state_dir` (exec-root/containers/<id>)
//!
//! `shim.json` (the [`ShimConfig`]), `shim.sock` (requests), `shim.pid`, `init.pid`,
//! `exit.json` ([`ExitInfo`], written atomically), `crun.log` (the runtime's JSON log, where
//! its error messages are read from), `shim.log` (the shim's own stderr).
//!
//! # Protocol on `shim.sock`
//!
//! One connection per request. The client sends one JSON line ([`Request`], tagged by
//! `"op"`); the shim answers one JSON line ([`Response`]). `wait` and `exec_wait` answer only
//! when the process has exited. After a successful `attach` or `exec` answer the connection
//! becomes a raw stream: output in Docker's multiplexed framing (`[stream,0,0,0,len u32 BE]`
//! then the payload; 1 = stdout, 2 = stderr) or raw bytes for a TTY; bytes from the client go
//! to the process's stdin. The shim closes the stream once the process has exited and its
//! output is drained, so EOF on the stream means "exited, status available".
//!
//! # The loop
//!
//! The shim is single-threaded and uses `poll(2)` over: a signalfd for SIGCHLD, the listener,
//! container and exec output fds, stdin fds with pending data and client connections. Runtime
//! commands (a few milliseconds each) run synchronously inside the loop; this keeps the shim
//! free of locks and well under 2 MiB of RSS.
//!
//! # Spawning, and spare shims
//!
//! berthd spawns a shim with `posix_spawn` (std does when no `pre_exec` hook is set): the
//! sync pipe and the sealed runtime go in as stdout and stdin, which the shim moves to fds
//! of their own. Or it hands the container to a spare ([`SpareShim`]): a shim started after
//! the previous start, at nice 19, already daemonised, waiting on a socket for the path of
//! its shim.json; from there on it is the same process as a spawned shim (it goes back to
//! nice 0 first). That takes the shim's exec, dynamic loading and two forks (about 1.4 ms)
//! off the start path. A spare that is never used exits at EOF on its socket.
//!
//! # Starting
//!
//! `crun create` leaves the init held at crun's exec barrier: it waits for a byte on the
//! fifo `<root>/<id>/exec.fifo`. For crun with no hooks (and no `NOTIFY_SOCKET`), `start`
//! is done in place: the shim opens the fifo without blocking, unlinks it (crun's mark of a
//! started container) and writes the byte, as `crun start` does, which spares the start of
//! a crun process (about 2 ms of every start). If the fifo cannot be opened (no reader: the
//! init is gone) the shim runs `crun start`, whose error the client sees.
//!
//! # Deleting an exited container
//!
//! As soon as the exit is recorded the container is deleted from the runtime, while berthd
//! unmounts the rootfs and releases the network. For crun with no hooks, that delete is
//! done in place: once the init is gone, all crun still holds is the container's cgroup
//! and its state directory `<root>/<id>`, and removing both directly spares the start of a
//! crun process (2 to 3 ms on the exit of every `run --rm`). Anything in the way (a process
//! left in the cgroup, an unknown runtime, hooks) leaves the job to `crun delete`.
//!
//! # Signalling the init
//!
//! A signal for the container's init alone (`stop`, `kill` without `--all`) is sent by the
//! shim with `kill(2)`, without `crun kill` (a crun process: 2 to 3 ms on every `docker
//! stop`). The init is the shim's child, reparented to it as subreaper, and the shim alone
//! reaps it: until the shim has recorded its exit, the pid cannot name another process,
//! which is the check `crun kill` makes through the process's start time. A signal for
//! every process of the container (`--all`) still goes through `crun kill --all`, which
//! walks the cgroup.

pub mod client;
pub mod logfile;
mod server;

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

pub use client::{read_exit_file, shim_alive, ShimClient};
pub use server::main as shim_main;

/// How the shim is told what to run; stored as `state_dir/shim.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    /// The OCI runtime binary (`crun`, or a path).
    pub runtime: PathBuf,
    /// `--root` for the runtime.
    pub runtime_root: PathBuf,
    pub log_path: PathBuf,
    pub log_max_size: Option<u64>,
    pub log_max_files: u32,
    pub terminal: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// What the shim needs from the bundle's config.json, when the caller knows it (so the
    /// shim does not parse the whole 20 KB spec for three fields on every start); read from
    /// config.json when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_facts: Option<SpecFacts>,
}

/// The parts of a runtime spec the shim acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecFacts {
    /// `linux.cgroupsPath`.
    pub cgroups_path: String,
    /// Whether the spec has `hooks` or `linux.intelRdt`, which only the runtime itself
    /// knows how to start and delete.
    pub runtime_only: bool,
}

impl SpecFacts {
    pub fn of(spec: &serde_json::Value) -> SpecFacts {
        SpecFacts {
            cgroups_path: spec["linux"]["cgroupsPath"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            runtime_only: !spec["hooks"].is_null() || !spec["linux"]["intelRdt"].is_null(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShimStatus {
    Created,
    Running,
    Paused,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    pub pid: u32,
    pub status: ShimStatus,
    pub exit_code: Option<i64>,
    pub exited_at: Option<String>,
}

/// The container's exit, as recorded in `exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// The exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i64,
    /// RFC 3339 with nanoseconds, UTC.
    pub exited_at: String,
    pub oom_killed: bool,
}

/// A process to run inside the running container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub exec_id: String,
    /// An OCI `process` object (args, env, cwd, user, capabilities, ...).
    pub process: serde_json::Value,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecState {
    pub running: bool,
    pub pid: u32,
    pub exit_code: Option<i64>,
}

/// One request on `shim.sock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Start,
    State,
    Wait,
    Kill {
        signal: i32,
        all: bool,
    },
    Pause,
    Resume,
    Resize {
        h: u16,
        w: u16,
    },
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Exec(ExecSpec),
    ExecWait {
        exec_id: String,
    },
    ExecState {
        exec_id: String,
    },
    ExecResize {
        exec_id: String,
        h: u16,
        w: u16,
    },
    ExecKill {
        exec_id: String,
        signal: i32,
    },
    Shutdown,
}

/// The answer line: `error` set on failure, else `data` holds the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{0}")]
    Runtime(String),
    #[error("start shim {path}: {source}")]
    Spawn { path: PathBuf, source: io::Error },
    #[error("shim for {id} exited before reporting: {detail}")]
    Handshake { id: String, detail: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("shim protocol: {0}")]
    Protocol(String),
    #[error("connect to shim at {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("shim request failed: {0}")]
    Remote(String),
}

impl ShimError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> ShimError {
        ShimError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How long spawn_shim waits for the shim to report that the container was created.
const SPAWN_TIMEOUT_MS: i32 = 120_000;

/// Write `data` to `path` atomically (temp file, rename).
///
/// No fsync: every file written here lives in the exec root, which is runtime state (tmpfs
/// on a normal host). The rename already guarantees that a crash of berthd or the shim never
/// leaves a torn file; only a power loss could, and that takes the containers with it. An
/// fsync cost 2 to 8 ms each on this machine's disk, several times per container start.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ShimError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp).map_err(|e| ShimError::io("create", &tmp, e))?;
    f.write_all(data)
        .map_err(|e| ShimError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| ShimError::io("rename", path, e))
}

/// Start a detached shim for `cfg`, which creates (but does not start) the container.
///
/// Returns the shim's pid once the shim listens on `shim.sock` and the container exists, or
/// the runtime's error message (e.g. crun's "executable file `x` not found in $PATH") if the
/// create failed. Blocking: call it from a blocking thread in async code.
pub fn spawn_shim(shim_bin: &Path, cfg: &ShimConfig) -> Result<u32, ShimError> {
    spawn_shim_with(shim_bin, cfg, None)
}

/// [`spawn_shim`], handing the shim a sealed copy of the runtime binary to execute (see
/// [`crate::sealed`]); without one the shim runs `cfg.runtime` by its path.
pub fn spawn_shim_with(
    shim_bin: &Path,
    cfg: &ShimConfig,
    runtime: Option<BorrowedFd<'_>>,
) -> Result<u32, ShimError> {
    let (cfg_path, shim_log) = write_shim_files(cfg)?;
    let dir = &cfg.state_dir;
    let stderr = fs::File::create(&shim_log).map_err(|e| ShimError::io("create", &shim_log, e))?;

    // Both ends close-on-exec, so concurrent spawns from other daemon threads never inherit
    // them. The child gets the write end as its stdout and the runtime's memfd as its stdin,
    // which the shim moves to fds of their own at once (see `server::main`). No `pre_exec`
    // hook is needed to clear close-on-exec, so std spawns with `posix_spawn` (a vfork-style
    // clone) instead of a fork: a fork of berthd copies its page tables, about 0.5 ms of
    // CPU on every container start.
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ShimError::io("pipe", dir, e.into()))?;
    let mut cmd = Command::new(shim_bin);
    cmd.arg(&cfg_path);
    spawn_daemonizing(
        cmd,
        Stdio::from(wr),
        runtime,
        Stdio::from(stderr),
        shim_bin,
        dir,
    )?;
    await_report(fs::File::from(rd), cfg, &shim_log)
}

/// Writes `shim.json` and clears what an earlier run of this container left; returns the
/// paths of shim.json and shim.log.
fn write_shim_files(cfg: &ShimConfig) -> Result<(PathBuf, PathBuf), ShimError> {
    let dir = &cfg.state_dir;
    fs::create_dir_all(dir).map_err(|e| ShimError::io("create", dir, e))?;
    let cfg_path = dir.join("shim.json");
    let data = serde_json::to_vec_pretty(cfg).expect("config serializes");
    write_atomic(&cfg_path, &data)?;
    for stale in ["shim.sock", "exit.json", "shim.pid"] {
        let _ = fs::remove_file(dir.join(stale));
    }
    Ok((cfg_path, dir.join("shim.log")))
}

/// Spawns `cmd` (a shim, which daemonises) with `sync` as its stdout and the runtime's
/// memfd as its stdin (`--sync-fd 1`, `--runtime-fd 0`), and reaps the first process,
/// which only forks and exits.
fn spawn_daemonizing(
    mut cmd: Command,
    sync: Stdio,
    runtime: Option<BorrowedFd<'_>>,
    stderr: Stdio,
    shim_bin: &Path,
    dir: &Path,
) -> Result<(), ShimError> {
    cmd.arg("--sync-fd").arg("1");
    let stdin = match runtime {
        Some(fd) => {
            cmd.arg("--runtime-fd").arg("0");
            let dup = fd
                .try_clone_to_owned()
                .map_err(|e| ShimError::io("dup runtime fd", dir, e))?;
            Stdio::from(dup)
        }
        None => Stdio::null(),
    };
    cmd.stdin(stdin).stdout(sync).stderr(stderr);
    let mut child = cmd.spawn().map_err(|source| ShimError::Spawn {
        path: shim_bin.to_path_buf(),
        source,
    })?;
    // The parent's sync end and memfd copy go with `cmd`: EOF on the other end then means
    // every shim process has exited or reported.
    drop(cmd);
    let _ = child.wait();
    Ok(())
}

/// Waits (with a timeout) for the shim's report on `rd`: its pid once the container
/// exists, or the runtime's error.
fn await_report(mut reader: fs::File, cfg: &ShimConfig, shim_log: &Path) -> Result<u32, ShimError> {
    // A runtime that hangs in create must not hang the daemon's caller forever.
    let mut pfd = libc::pollfd {
        fd: reader.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on an fd we own.
    let ready = unsafe { libc::poll(&mut pfd, 1, SPAWN_TIMEOUT_MS) };
    if ready == 0 {
        return Err(ShimError::Handshake {
            id: cfg.id.clone(),
            detail: format!(
                "no answer within {} s; see {}",
                SPAWN_TIMEOUT_MS / 1000,
                shim_log.display()
            ),
        });
    }
    let mut msg = String::new();
    let _ = reader.read_to_string(&mut msg);
    let msg = msg.trim();
    if let Some(pid) = msg.strip_prefix("ok ") {
        return pid.trim().parse().map_err(|_| ShimError::Handshake {
            id: cfg.id.clone(),
            detail: format!("bad pid {pid:?}"),
        });
    }
    if let Some(err) = msg.strip_prefix("error ") {
        return Err(ShimError::Runtime(err.to_string()));
    }
    let log = fs::read_to_string(shim_log).unwrap_or_default();
    Err(ShimError::Handshake {
        id: cfg.id.clone(),
        detail: if log.trim().is_empty() {
            "no message".to_string()
        } else {
            log.trim().to_string()
        },
    })
}

/// A shim started ahead of need: already executed, loaded and daemonised, waiting on its
/// socket for the path of a shim.json.
///
/// Starting a shim (exec, dynamic loading, two forks) took about 1.4 ms between berthd's
/// spawn and the runtime's exec on every container start; a spare made after the previous
/// start moves that off the next start's path. The spare holds the sealed runtime it was
/// given, so it only serves containers of that runtime. It exits by itself when berthd
/// drops it or exits (EOF on its socket), so it can never outlive the daemon unused.
#[derive(Debug)]
pub struct SpareShim {
    sock: std::os::unix::net::UnixStream,
}

impl SpareShim {
    /// Starts a spare for the daemon with exec root `exec_root` (named in its command line,
    /// so tools that look for a daemon's processes by path find it). Blocking.
    pub fn spawn(
        shim_bin: &Path,
        exec_root: &Path,
        runtime: Option<BorrowedFd<'_>>,
    ) -> Result<SpareShim, ShimError> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| ShimError::io("socketpair", exec_root, e))?;
        let mut cmd = Command::new(shim_bin);
        cmd.arg("--spare").arg(exec_root);
        // The spare starts at the lowest priority (it inherits this thread's nice value),
        // so its exec and loading yield to whatever start or exit is under way; it goes
        // back to normal when it gets its job (`server::main`).
        let nice = ThreadNice::lowest();
        let spawned = spawn_daemonizing(
            cmd,
            Stdio::from(OwnedFd::from(theirs)),
            runtime,
            Stdio::null(),
            shim_bin,
            exec_root,
        );
        drop(nice);
        spawned?;
        Ok(SpareShim { sock: ours })
    }

    /// Hands `cfg` to the spare, which then does what a shim spawned for it would: returns
    /// its pid once the container exists, or the runtime's error. `Err(Gone)` when the
    /// spare is no longer there (the caller spawns a shim instead). Blocking.
    pub fn launch(mut self, cfg: &ShimConfig) -> Result<Result<u32, ShimError>, SpareGone> {
        let (cfg_path, shim_log) = match write_shim_files(cfg) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let mut job = cfg_path.into_os_string().into_encoded_bytes();
        job.push(b'\n');
        if self.sock.write_all(&job).is_err() {
            return Err(SpareGone);
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        let reader = fs::File::from(OwnedFd::from(self.sock));
        Ok(await_report(reader, cfg, &shim_log))
    }
}

/// The calling thread at nice 19 until dropped, which restores its nice value.
struct ThreadNice(Option<i32>);

impl ThreadNice {
    fn lowest() -> ThreadNice {
        // SAFETY: getpriority/setpriority on this thread's id; no memory is passed.
        unsafe {
            let tid = libc::gettid() as libc::id_t;
            *libc::__errno_location() = 0;
            let old = libc::getpriority(libc::PRIO_PROCESS, tid);
            if *libc::__errno_location() != 0 || libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0
            {
                return ThreadNice(None);
            }
            ThreadNice(Some(old))
        }
    }
}

impl Drop for ThreadNice {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            // SAFETY: as above.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, old);
            }
        }
    }
}

/// A spare shim that could not take its job: it had exited.
#[derive(Debug)]
pub struct SpareGone;

/// Longest socket path `bind`/`connect` take (sun_path is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A path to `path` that fits in sun_path. Exec roots under temporary directories plus a
/// 64-hex container id come close to the limit, so longer paths go through the
/// `/proc/self/fd/<dirfd>/<name>` alias of an open directory handle, which the caller keeps
/// alive (the returned `File`) for as long as the alias is used.
pub(crate) fn short_socket_path(path: &Path) -> io::Result<(PathBuf, Option<fs::File>)> {
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok((path.to_path_buf(), None));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((path.to_path_buf(), None));
    };
    let d = fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    Ok((short, Some(d)))
}

/// Reopen an fd number inherited from spawn_shim.
///
/// # Safety
/// `fd` must be an open descriptor this process owns and nothing else will close.
pub(crate) unsafe fn file_from_fd(fd: i32) -> fs::File {
    // SAFETY: guaranteed by the caller.
    unsafe { fs::File::from_raw_fd(fd) }
}
