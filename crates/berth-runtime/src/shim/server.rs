//! The shim process itself: daemonising, container creation and the poll loop.
//! See the module docs of [`crate::shim`] for the design.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, setsid, ForkResult, Pid};
use serde_json::{json, Value};

use super::logfile::{JsonLog, Stream};
use super::{write_atomic, ExitInfo, Request, Response, ShimConfig, ShimError, ShimStatus};

/// How long after the init exits we keep draining output still held open by stray processes.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long an exited container's shim waits for berthd to collect the status.
const IDLE_EXIT: Duration = Duration::from_secs(600);
/// Stop reading container output while a client lags this far behind (backpressure).
const MAX_CLIENT_BUFFER: usize = 1 << 20;

/// Entry point of the `berth-shim` binary: `berth-shim <shim.json> [--sync-fd N]
/// [--runtime-fd N]`, or `berth-shim --spare <exec-root> --sync-fd N [--runtime-fd N]` for a
/// spare that daemonises at once and then waits on the sync socket for the path of its
/// shim.json (see [`super::SpareShim`]).
pub fn main(args: Vec<OsString>) -> i32 {
    let mut cfg_path = None;
    let mut sync_fd: Option<RawFd> = None;
    let mut runtime_fd: Option<RawFd> = None;
    let mut spare = false;
    let mut it = args.into_iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--sync-fd" || a == "--runtime-fd" {
            let fd = it
                .next()
                .and_then(|v| v.to_str().and_then(|s| s.parse().ok()));
            if a == "--sync-fd" {
                sync_fd = fd;
            } else {
                runtime_fd = fd;
            }
        } else if a == "--spare" {
            // The exec root that follows only names the spare's daemon in `ps`.
            spare = true;
            let _ = it.next();
        } else {
            cfg_path = Some(PathBuf::from(a));
        }
    }
    // spawn_shim hands both over as stdout and stdin; they move to fds of their own and
    // the standard fds point at /dev/null, as a daemon's should.
    let sync_fd = sync_fd.map(move_off_stdio);
    let runtime_fd = runtime_fd.map(move_off_stdio);
    // SAFETY: spawn_shim passes the write end of its pipe (or its end of the spare's
    // socket) as this fd number; we own it.
    let mut sync = sync_fd.map(|fd| unsafe { super::file_from_fd(fd) });
    if let Some(s) = &sync {
        // Keep it out of the runtime and container processes we spawn.
        let _ = nix::fcntl::fcntl(
            s.as_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    // SAFETY: spawn_shim_with passes a sealed memfd of the runtime as this fd number; we own
    // our copy of the descriptor from here on.
    let runtime_fd = runtime_fd.map(|fd| OwnedFd::from(unsafe { super::file_from_fd(fd) }));
    if let Some(fd) = &runtime_fd {
        // Containers and runtimes must not inherit it; the path /proc/self/fd/N is resolved
        // by execve before close-on-exec applies, which is all the runtime needs.
        let _ = nix::fcntl::fcntl(
            fd.as_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let mut preloaded = None;
    if spare {
        if daemonize().is_err() {
            return 1;
        }
        // The runtime too starts ahead, at the spare's nice 19 (see crate::preload).
        preloaded = runtime_fd.as_ref().and_then(preload_runtime);
        match await_job(&mut sync) {
            Some(p) => {
                // Spawned at nice 19 (see SpareShim::spawn): a container's shim runs at 0.
                // SAFETY: setpriority on this process; no memory is passed.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 0);
                }
                cfg_path = Some(p)
            }
            // berthd has gone or dropped its spare: nothing to do.
            None => return 0,
        }
    }
    let cfg = match cfg_path
        .ok_or_else(|| "usage: berth-shim <shim.json> [--sync-fd N] [--runtime-fd N]".to_string())
        .and_then(|p| {
            let data = fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
            serde_json::from_slice::<ShimConfig>(&data)
                .map_err(|e| format!("parse {}: {e}", p.display()))
        }) {
        Ok(c) => c,
        Err(e) => {
            report(&mut sync, &format!("error {e}"));
            eprintln!("berth-shim: {e}");
            return 2;
        }
    };
    if spare {
        // A spare's stderr is /dev/null until it knows its container.
        redirect_stderr(&cfg.state_dir.join("shim.log"));
    } else if let Err(e) = daemonize() {
        report(&mut sync, &format!("error daemonize shim: {e}"));
        return 1;
    }
    match Shim::setup(cfg, runtime_fd, preloaded) {
        Ok(mut shim) => {
            report(&mut sync, &format!("ok {}", std::process::id()));
            drop(sync);
            shim.run();
            0
        }
        Err(e) => {
            eprintln!("berth-shim: {e}");
            report(&mut sync, &format!("error {e}"));
            1
        }
    }
}

/// A pre-started runtime for a spare whose sealed runtime is crun (the memfd is named
/// after the binary, see `crate::sealed`): the preload library needs a dynamically linked
/// glibc program, and crun's layout is the one the shim knows.
fn preload_runtime(fd: &OwnedFd) -> Option<crate::preload::PreloadedRuntime> {
    // BERTH_NO_PRELOAD=1 in berthd's environment (which spares inherit) turns it off.
    if !crate::preload::available() || std::env::var_os("BERTH_NO_PRELOAD").is_some() {
        return None;
    }
    let exe = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let target = fs::read_link(&exe).ok()?;
    if !target.to_string_lossy().starts_with("/memfd:berth:crun ") {
        return None;
    }
    crate::preload::PreloadedRuntime::spawn(&exe, std::ffi::OsStr::new("crun")).ok()
}

/// A spare's wait for its job: one line on the sync socket, the path of a shim.json. None
/// at EOF (berthd exited or dropped the spare) or on a read error.
fn await_job(sync: &mut Option<File>) -> Option<PathBuf> {
    let s = sync.as_mut()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 512];
    loop {
        match s.read(&mut byte) {
            Ok(0) => return None,
            Ok(n) => {
                line.extend_from_slice(&byte[..n]);
                if let Some(end) = line.iter().position(|&b| b == b'\n') {
                    line.truncate(end);
                    use std::os::unix::ffi::OsStringExt;
                    return Some(PathBuf::from(OsString::from_vec(line)));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Points fd 2 at `path` (created or truncated); left as it is if that fails.
fn redirect_stderr(path: &std::path::Path) {
    if let Ok(f) = File::create(path) {
        // SAFETY: dup2 onto fd 2 of an fd we own; no memory is passed.
        unsafe {
            libc::dup2(f.as_raw_fd(), 2);
        }
    }
}

/// For `fd` among 0..=2: a close-on-exec duplicate above them, with /dev/null put in its
/// place; other fds are returned as they are. Errors leave `fd` where it was.
fn move_off_stdio(fd: RawFd) -> RawFd {
    if !(0..=2).contains(&fd) {
        return fd;
    }
    // SAFETY: fcntl, open and dup2 on fds this process owns; no memory is passed.
    unsafe {
        let moved = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
        if moved < 0 {
            return fd;
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, fd);
            libc::close(null);
        }
        moved
    }
}

fn report(sync: &mut Option<File>, msg: &str) {
    if let Some(s) = sync {
        let _ = s.write_all(format!("{}\n", msg.replace('\n', " ")).as_bytes());
    }
}

/// Fork twice with a setsid in between: the shim is then no child of berthd, leads no
/// session (so it never acquires a controlling terminal) and survives berthd's death.
fn daemonize() -> nix::Result<()> {
    // SAFETY: the shim is single-threaded at this point, so fork cannot leave locks held by
    // other threads; the parent only calls _exit.
    match unsafe { fork() }? {
        // SAFETY: _exit is always safe; it skips destructors that belong to the child now.
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    setsid()?;
    // SAFETY: as above, still single-threaded.
    match unsafe { fork() }? {
        // SAFETY: as above.
        ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        ForkResult::Child => {}
    }
    let _ = std::env::set_current_dir("/");
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Container,
    Exec(String),
}

/// An output fd (pipe read end or pty master).
struct Source {
    file: File,
    owner: Owner,
    stream: u8,
}

/// A stdin fd with bytes waiting to be written.
#[derive(Default)]
struct Sink {
    file: Option<File>,
    pending: Vec<u8>,
    close_when_flushed: bool,
}

impl Sink {
    fn push(&mut self, data: &[u8]) {
        if self.file.is_some() {
            self.pending.extend_from_slice(data);
        }
    }

    fn close(&mut self) {
        self.close_when_flushed = true;
        if self.pending.is_empty() {
            self.file = None;
        }
    }

    fn flush(&mut self) {
        let Some(f) = self.file.as_mut() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match f.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    // The reader is gone (EPIPE): nothing more can be delivered.
                    self.pending.clear();
                    self.file = None;
                    return;
                }
            }
        }
        if self.close_when_flushed {
            self.file = None;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Request,
    Wait,
    ExecWait(String),
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Exec {
        id: String,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
}

struct Conn {
    stream: UnixStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    mode: Mode,
    read_eof: bool,
    close_after_flush: bool,
    dead: bool,
}

struct Exec {
    pid: i32,
    tty: bool,
    pty: Option<File>,
    stdin: Sink,
    /// Wait status from the reaper, kept until the output has drained.
    reaped: Option<(i64, Instant)>,
    /// Final exit code, set once reaped and drained.
    exit: Option<i64>,
}

struct Shim {
    cfg: ShimConfig,
    listener: UnixListener,
    sigfd: SignalFd,
    cgroups_path: String,
    init_pid: i32,
    status: ShimStatus,
    init_exit: Option<(i64, Instant)>,
    exit: Option<ExitInfo>,
    log: Option<JsonLog>,
    sources: Vec<Source>,
    stdin: Sink,
    pty: Option<File>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    execs: HashMap<String, Exec>,
    /// Exit statuses of children reaped before we learnt their pid.
    unclaimed: HashMap<i32, i64>,
    last_activity: Instant,
    console_seq: u32,
    /// Open handle on state_dir, for socket paths too long for sun_path.
    state_dir_fd: File,
    /// A sealed copy of the runtime binary (see `crate::sealed`), run instead of its path.
    runtime_fd: Option<OwnedFd>,
    /// The runtime has forgotten the container (`delete` ran).
    runtime_deleted: bool,
    /// Whether the shim may do crun's part of `start` and of the delete of an exited
    /// container itself (see [`Shim::start_in_place`], [`Shim::delete_in_place`]).
    in_place: bool,
    /// A spare's runtime process, loaded and waiting for `create` (see `crate::preload`).
    preloaded: Option<crate::preload::PreloadedRuntime>,
    /// [`Shim::delete_in_place`] removed the container's cgroup and runtime state.
    deleted_in_place: bool,
}

fn exit_code(status: WaitStatus) -> Option<(i32, i64)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), i64::from(code))),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as i64)),
        _ => None,
    }
}

fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    fcntl(
        fd.as_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Set a terminal's window size.
fn resize_pty(pty: &File, h: u16, w: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: h,
        ws_col: w,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct from a valid pointer; the fd is open.
    let rc = unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receive the pty master the runtime sends over the console socket (SCM_RIGHTS).
fn recv_pty(listener: &UnixListener) -> Result<File, String> {
    // The runtime has already exited when we get here, so its connection is either queued
    // or never happened (e.g. process.terminal unset in config.json): never block on it.
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("console socket: {e}"))?;
    let (conn, _) = listener.accept().map_err(|e| {
        if e.kind() == ErrorKind::WouldBlock {
            "the runtime sent no pty master (is process.terminal set in config.json?)".to_string()
        } else {
            format!("accept console socket: {e}")
        }
    })?;
    conn.set_nonblocking(false)
        .map_err(|e| format!("console socket: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("console socket timeout: {e}"))?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive pty master: {e}"))?;
    for cmsg in msg
        .cmsgs()
        .map_err(|e| format!("receive pty master: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd in our table for us to own.
                return Ok(unsafe { super::file_from_fd(*fd) });
            }
        }
    }
    Err("console socket message carried no file descriptor".to_string())
}

impl Shim {
    fn setup(
        cfg: ShimConfig,
        runtime_fd: Option<OwnedFd>,
        preloaded: Option<crate::preload::PreloadedRuntime>,
    ) -> Result<Shim, ShimError> {
        let dir = cfg.state_dir.clone();
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| ShimError::io("set child subreaper", &dir, e.into()))?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| ShimError::io("block SIGCHLD", &dir, e.into()))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| ShimError::io("signalfd", &dir, e.into()))?;

        let state_dir_fd = File::open(&dir).map_err(|e| ShimError::io("open", &dir, e))?;
        let sock = dir.join("shim.sock");
        let _ = fs::remove_file(&sock);
        let listener = super::short_socket_path(&sock)
            .and_then(|(p, _dir)| UnixListener::bind(p))
            .map_err(|e| ShimError::io("bind", &sock, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ShimError::io("listen", &sock, e))?;

        let facts = cfg.spec_facts.clone().unwrap_or_else(|| {
            let spec: Value = fs::read(cfg.bundle.join("config.json"))
                .ok()
                .and_then(|d| serde_json::from_slice(&d).ok())
                .unwrap_or(Value::Null);
            super::SpecFacts::of(&spec)
        });
        let cgroups_path = facts.cgroups_path;
        let crun = cfg.runtime.file_name() == Some(std::ffi::OsStr::new("crun"));
        let in_place = crun && !facts.runtime_only && cgroups_path.starts_with('/');

        // An empty log path is the `none` log driver: output goes to attached clients only.
        let log = if cfg.log_path.as_os_str().is_empty() {
            None
        } else {
            Some(
                JsonLog::open(&cfg.log_path, cfg.log_max_size, cfg.log_max_files)
                    .map_err(|e| ShimError::Runtime(e.to_string()))?,
            )
        };

        let mut shim = Shim {
            cfg,
            listener,
            sigfd,
            cgroups_path,
            init_pid: 0,
            status: ShimStatus::Created,
            init_exit: None,
            exit: None,
            log,
            sources: Vec::new(),
            stdin: Sink::default(),
            pty: None,
            conns: BTreeMap::new(),
            next_conn: 0,
            execs: HashMap::new(),
            unclaimed: HashMap::new(),
            last_activity: Instant::now(),
            console_seq: 0,
            state_dir_fd,
            runtime_fd,
            runtime_deleted: false,
            in_place,
            preloaded: preloaded.filter(|_| crun),
            deleted_in_place: false,
        };
        if let Err(e) = shim.create() {
            let _ = fs::remove_file(&sock);
            let _ = shim.runtime(&["delete", "--force", &shim.cfg.id.clone()]);
            return Err(e);
        }
        Ok(shim)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.cfg.state_dir.join(name)
    }

    fn runtime_cmd(&self) -> Command {
        let mut c = self.runtime_cmd_bare();
        c.args(self.runtime_flags());
        c
    }

    /// `--root`, `--log` and `--log-format`, the runtime's global flags.
    fn runtime_flags(&self) -> Vec<OsString> {
        vec![
            "--root".into(),
            self.cfg.runtime_root.clone().into(),
            "--log".into(),
            self.path("crun.log").into(),
            "--log-format".into(),
            "json".into(),
        ]
    }

    /// The runtime binary, without arguments.
    fn runtime_cmd_bare(&self) -> Command {
        match &self.runtime_fd {
            Some(fd) => {
                let mut c = Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                // The runtime names itself after argv[0] in its messages.
                let name = self.cfg.runtime.file_name().unwrap_or_default();
                std::os::unix::process::CommandExt::arg0(&mut c, name);
                c
            }
            None => Command::new(&self.cfg.runtime),
        }
    }

    fn log_offset(&self) -> u64 {
        fs::metadata(self.path("crun.log"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The runtime's error message: its JSON log lines since `offset`, else its stderr.
    fn runtime_error(&self, op: &str, offset: u64, stderr: &str, status: &str) -> ShimError {
        let mut msgs = Vec::new();
        if let Ok(mut f) = File::open(self.path("crun.log")) {
            use std::io::Seek;
            let mut text = String::new();
            if f.seek(io::SeekFrom::Start(offset)).is_ok() && f.read_to_string(&mut text).is_ok() {
                for line in text.lines() {
                    let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
                    if matches!(v["level"].as_str(), Some("error" | "fatal")) {
                        if let Some(m) = v["msg"].as_str() {
                            msgs.push(m.to_string());
                        }
                    } else if v.is_null() && !line.trim().is_empty() {
                        msgs.push(line.trim().to_string());
                    }
                }
            }
        }
        let stderr = stderr.trim();
        if msgs.is_empty() && !stderr.is_empty() {
            msgs.push(stderr.to_string());
        }
        if msgs.is_empty() {
            msgs.push(status.to_string());
        }
        let name = self
            .cfg
            .runtime
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "runtime".into());
        ShimError::Runtime(format!("{name} {op} failed: {}", msgs.join(": ")))
    }

    /// Run a short runtime command to completion.
    fn runtime(&self, args: &[&str]) -> Result<(), ShimError> {
        let offset = self.log_offset();
        let out = self
            .runtime_cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| ShimError::io("run", &self.cfg.runtime, e))?;
        if out.status.success() {
            return Ok(());
        }
        Err(self.runtime_error(
            args.first().copied().unwrap_or("command"),
            offset,
            &String::from_utf8_lossy(&out.stderr),
            &out.status.to_string(),
        ))
    }

    /// A fresh console socket: (real path, path to give the runtime, listener).
    fn console_listener(&mut self) -> Result<(PathBuf, PathBuf, UnixListener), ShimError> {
        self.console_seq += 1;
        let p = self.path(&format!("c{}.sock", self.console_seq));
        let _ = fs::remove_file(&p);
        let l = super::short_socket_path(&p)
            .and_then(|(short, _dir)| UnixListener::bind(short))
            .map_err(|e| ShimError::io("bind", &p, e))?;
        // The runtime connects from its own process: hand it a path that fits sun_path there
        // too, through our long-lived state dir handle when the real one is too long.
        let for_runtime = if p.as_os_str().len() > super::MAX_SOCKET_PATH {
            let name = p.file_name().expect("socket path has a file name");
            PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                self.state_dir_fd.as_raw_fd()
            ))
            .join(name)
        } else {
            p.clone()
        };
        Ok((p, for_runtime, l))
    }

    /// `crun create`: the init exists and waits for `start`.
    fn create(&mut self) -> Result<(), ShimError> {
        let dir = self.cfg.state_dir.clone();
        let pid_file = self.path("init.pid");
        let _ = fs::remove_file(&pid_file);
        let io_err = |e: io::Error| ShimError::io("set up stdio", &dir, e);
        let mut args: Vec<OsString> = self.runtime_flags();
        args.extend(["create".into(), "--bundle".into()]);
        args.push(self.cfg.bundle.clone().into());
        args.push("--pid-file".into());
        args.push(pid_file.clone().into());
        let null = || -> Result<OwnedFd, ShimError> {
            File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
                .map_err(io_err)
        };
        let mut console = None;
        let stdio: [OwnedFd; 3] = if self.cfg.terminal {
            let (p, for_runtime, l) = self.console_listener()?;
            args.push("--console-socket".into());
            args.push(for_runtime.into());
            console = Some((p, l));
            [null()?, null()?, null()?]
        } else {
            let stdin = if self.cfg.open_stdin {
                let (r, w) = pipe().map_err(io_err)?;
                set_nonblocking(&w).map_err(io_err)?;
                self.stdin.file = Some(File::from(w));
                r
            } else {
                null()?
            };
            let mut out = Vec::with_capacity(2);
            for stream in [1u8, 2u8] {
                let (r, w) = pipe().map_err(io_err)?;
                set_nonblocking(&r).map_err(io_err)?;
                self.sources.push(Source {
                    file: File::from(r),
                    owner: Owner::Container,
                    stream,
                });
                out.push(w);
            }
            let stderr = out.pop().expect("two pipes");
            let stdout = out.pop().expect("two pipes");
            [stdin, stdout, stderr]
        };
        args.push(self.cfg.id.clone().into());
        let offset = self.log_offset();
        // None when the preloaded runtime is gone before its command: spawn one as usual.
        let preloaded = self.preloaded.take().and_then(|pre| {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            pre.run(
                &cwd,
                &args,
                [stdio[0].as_fd(), stdio[1].as_fd(), stdio[2].as_fd()],
            )
        });
        let status = match preloaded {
            Some(status) => {
                drop(stdio);
                status
            }
            None => {
                let [stdin, stdout, stderr] = stdio;
                self.runtime_cmd_bare()
                    .args(&args)
                    .stdin(Stdio::from(stdin))
                    .stdout(Stdio::from(stdout))
                    .stderr(Stdio::from(stderr))
                    .status()
            }
        }
        .map_err(|e| ShimError::io("run", &self.cfg.runtime, e))?;
        // The write ends went to the runtime and the init; ours are closed by now.
        if !status.success() {
            let mut stderr = String::new();
            if let Some(src) = self.sources.iter_mut().find(|s| s.stream == 2) {
                let mut buf = vec![0u8; 8192];
                if let Ok(n) = src.file.read(&mut buf) {
                    stderr = String::from_utf8_lossy(&buf[..n]).into_owned();
                }
            }
            if let Some((p, _)) = &console {
                let _ = fs::remove_file(p);
            }
            return Err(self.runtime_error("create", offset, &stderr, &status.to_string()));
        }
        if let Some((p, l)) = console {
            let pty = recv_pty(&l).map_err(ShimError::Runtime);
            let _ = fs::remove_file(&p);
            let pty = pty?;
            set_nonblocking(&pty).map_err(io_err)?;
            let reader = pty.try_clone().map_err(io_err)?;
            self.sources.push(Source {
                file: reader,
                owner: Owner::Container,
                stream: 1,
            });
            if self.cfg.open_stdin {
                self.stdin.file = Some(pty.try_clone().map_err(io_err)?);
            }
            self.pty = Some(pty);
        }
        let pid_text =
            fs::read_to_string(&pid_file).map_err(|e| ShimError::io("read", &pid_file, e))?;
        self.init_pid = pid_text.trim().parse().map_err(|_| {
            ShimError::Runtime(format!("bad pid {:?} in {}", pid_text, pid_file.display()))
        })?;
        write_atomic(
            &self.path("shim.pid"),
            std::process::id().to_string().as_bytes(),
        )?;
        Ok(())
    }

    fn run(&mut self) {
        loop {
            self.poll_once();
            self.reap();
            self.check_exit();
            self.check_execs();
            self.flush_conns();
            if self.exit.is_some() && !self.runtime_deleted {
                // The exit is recorded and the waiters have their answer (flushed above), so
                // the runtime's state can go now, while berthd unmounts and tears down the
                // network, instead of after it asks: `docker run --rm` waits for all of it.
                self.delete_from_runtime();
            }
            if self.exit.is_some()
                && self.conns.is_empty()
                && self.last_activity.elapsed() > IDLE_EXIT
            {
                // Nobody collected the status: clean up the runtime state but keep exit.json
                // for berthd's reconciliation.
                self.cleanup();
                return;
            }
        }
    }

    fn backpressured(&self) -> bool {
        self.conns
            .values()
            .any(|c| c.wbuf.len() > MAX_CLIENT_BUFFER)
    }

    fn poll_once(&mut self) {
        #[derive(Clone)]
        enum Tag {
            Sig,
            Listener,
            Source(usize),
            Stdin,
            ExecStdin(String),
            Conn(u64),
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut tags: Vec<Tag> = Vec::new();
        let mut add = |fd: RawFd, events: i16, tag: Tag| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tags.push(tag);
        };
        add(self.sigfd.as_fd().as_raw_fd(), libc::POLLIN, Tag::Sig);
        add(self.listener.as_raw_fd(), libc::POLLIN, Tag::Listener);
        if !self.backpressured() {
            for (i, s) in self.sources.iter().enumerate() {
                add(s.file.as_raw_fd(), libc::POLLIN, Tag::Source(i));
            }
        }
        if let (Some(f), false) = (&self.stdin.file, self.stdin.pending.is_empty()) {
            add(f.as_raw_fd(), libc::POLLOUT, Tag::Stdin);
        }
        for (id, e) in &self.execs {
            if let (Some(f), false) = (&e.stdin.file, e.stdin.pending.is_empty()) {
                add(f.as_raw_fd(), libc::POLLOUT, Tag::ExecStdin(id.clone()));
            }
        }
        for (id, c) in &self.conns {
            let mut ev = 0;
            if !c.read_eof {
                ev |= libc::POLLIN;
            }
            if !c.wbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            add(c.stream.as_raw_fd(), ev, Tag::Conn(*id));
        }
        let timeout = if self.init_exit.is_some() && self.exit.is_none() {
            50
        } else {
            1000
        };
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n <= 0 {
            return;
        }
        let ready: Vec<(Tag, i16)> = fds
            .iter()
            .zip(tags)
            .filter(|(p, _)| p.revents != 0)
            .map(|(p, t)| (t, p.revents))
            .collect();
        let mut dead_sources = Vec::new();
        for (tag, rev) in ready {
            match tag {
                Tag::Sig => while let Ok(Some(_)) = self.sigfd.read_signal() {},
                Tag::Listener => self.accept(),
                Tag::Source(i) => {
                    if !self.read_source(i) {
                        dead_sources.push(i);
                    }
                }
                Tag::Stdin => self.stdin.flush(),
                Tag::ExecStdin(id) => {
                    if let Some(e) = self.execs.get_mut(&id) {
                        e.stdin.flush();
                    }
                }
                Tag::Conn(id) => self.service_conn(id, rev),
            }
        }
        dead_sources.sort_unstable();
        for i in dead_sources.into_iter().rev() {
            self.sources.remove(i);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.next_conn += 1;
                    self.conns.insert(
                        self.next_conn,
                        Conn {
                            stream,
                            rbuf: Vec::new(),
                            wbuf: Vec::new(),
                            mode: Mode::Request,
                            read_eof: false,
                            close_after_flush: false,
                            dead: false,
                        },
                    );
                    self.last_activity = Instant::now();
                }
                Err(_) => return,
            }
        }
    }

    /// Read one chunk from an output source; false at EOF (or EIO on a pty whose slave closed).
    fn read_source(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 32 * 1024];
        let n = match self.sources[i].file.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return true
            }
            Err(_) => return false,
        };
        let data = &buf[..n];
        let (owner, stream) = (self.sources[i].owner.clone(), self.sources[i].stream);
        match &owner {
            Owner::Container => {
                if let Some(log) = self.log.as_mut() {
                    let s = if stream == 2 {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    };
                    if let Err(e) = log.write(s, data) {
                        eprintln!("berth-shim: {e}");
                    }
                }
                let tty = self.cfg.terminal;
                for c in self.conns.values_mut() {
                    if let Mode::Attach { stdout, stderr, .. } = c.mode {
                        if (stream == 1 && stdout) || (stream == 2 && stderr) {
                            push_output(&mut c.wbuf, tty, stream, data);
                        }
                    }
                }
            }
            Owner::Exec(id) => {
                let tty = self.execs.get(id).map(|e| e.tty).unwrap_or(false);
                for c in self.conns.values_mut() {
                    if let Mode::Exec {
                        id: cid,
                        stdout,
                        stderr,
                        ..
                    } = &c.mode
                    {
                        if cid == id && ((stream == 1 && *stdout) || (stream == 2 && *stderr)) {
                            push_output(&mut c.wbuf, tty, stream, data);
                        }
                    }
                }
            }
        }
        true
    }

    fn service_conn(&mut self, id: u64, rev: i16) {
        if let Some(c) = self.conns.get_mut(&id) {
            // poll reports HUP whatever we asked for: once the peer is fully gone and we have
            // read its EOF there is nobody to answer, and keeping the fd would spin the loop.
            if c.read_eof && rev & (libc::POLLHUP | libc::POLLERR) != 0 {
                c.dead = true;
                return;
            }
        }
        if rev & libc::POLLOUT != 0 {
            if let Some(c) = self.conns.get_mut(&id) {
                write_conn(c);
            }
        }
        if rev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return;
        }
        let mut buf = [0u8; 32 * 1024];
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let data = match c.stream.read(&mut buf) {
            Ok(0) => {
                c.read_eof = true;
                Vec::new()
            }
            Ok(n) => buf[..n].to_vec(),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return
            }
            Err(_) => {
                c.dead = true;
                return;
            }
        };
        let eof = c.read_eof;
        match c.mode.clone() {
            Mode::Request => {
                c.rbuf.extend_from_slice(&data);
                if let Some(pos) = c.rbuf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = c.rbuf.drain(..=pos).collect();
                    let rest = std::mem::take(&mut c.rbuf);
                    self.handle_request(id, &line);
                    // Bytes after the request line are already stdin for a stream.
                    if !rest.is_empty() {
                        self.stdin_from_conn(id, &rest, false);
                    }
                    if eof {
                        self.stdin_from_conn(id, &[], true);
                    }
                } else if eof {
                    c.dead = true;
                }
            }
            _ => self.stdin_from_conn(id, &data, eof),
        }
    }

    /// Route client bytes to the stdin the connection is attached to.
    fn stdin_from_conn(&mut self, id: u64, data: &[u8], eof: bool) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match c.mode.clone() {
            Mode::Attach { stdin: true, .. } => {
                self.stdin.push(data);
                self.stdin.flush();
                // As dockerd: an attach ending closes a TTY's stdin never (so detaching
                // with the detach keys leaves the shell running), a pipe's with StdinOnce.
                if eof && self.cfg.stdin_once && !self.cfg.terminal {
                    self.stdin.close();
                }
            }
            Mode::Exec { id: eid, stdin, .. } => {
                if let Some(e) = self.execs.get_mut(&eid) {
                    if stdin {
                        e.stdin.push(data);
                        e.stdin.flush();
                        if eof {
                            e.stdin.close();
                        }
                    }
                }
            }
            Mode::Request if eof => c.dead = true,
            _ => {}
        }
    }

    fn respond(&mut self, id: u64, res: Result<Value, String>) {
        let resp = match res {
            Ok(data) => Response { error: None, data },
            Err(e) => Response {
                error: Some(e),
                data: Value::Null,
            },
        };
        if let Some(c) = self.conns.get_mut(&id) {
            let mut line = serde_json::to_vec(&resp).expect("response serializes");
            line.push(b'\n');
            c.wbuf.extend_from_slice(&line);
            write_conn(c);
        }
    }

    /// Answer and close.
    fn finish(&mut self, id: u64, res: Result<Value, String>) {
        self.respond(id, res);
        if let Some(c) = self.conns.get_mut(&id) {
            c.close_after_flush = true;
        }
    }

    fn handle_request(&mut self, id: u64, line: &[u8]) {
        self.last_activity = Instant::now();
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return self.finish(id, Err(format!("bad request: {e}"))),
        };
        let cid = self.cfg.id.clone();
        match req {
            Request::Start => {
                let r = match self.status {
                    ShimStatus::Created if self.init_exit.is_none() => {
                        let started = if self.in_place && self.start_in_place() {
                            Ok(())
                        } else {
                            self.runtime(&["start", &cid])
                        };
                        started.map(|()| {
                            self.status = ShimStatus::Running;
                            json!({})
                        })
                    }
                    _ => Err(ShimError::Runtime(format!(
                        "container {cid} cannot be started: it is {:?}",
                        self.status
                    ))),
                };
                self.finish(id, r.map_err(|e| e.to_string()));
            }
            Request::State => {
                let st = self.state();
                self.finish(id, Ok(st));
            }
            Request::Wait => {
                if let Some(exit) = &self.exit {
                    let v = serde_json::to_value(exit).expect("exit serializes");
                    self.finish(id, Ok(v));
                } else if let Some(c) = self.conns.get_mut(&id) {
                    c.mode = Mode::Wait;
                }
            }
            Request::Kill { signal, all } => {
                let r = if self.init_exit.is_some() {
                    Err(format!("container {cid} is not running"))
                } else if !all && self.init_pid > 0 {
                    // Our unreaped child: the pid is still the init's (see the module docs).
                    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
                    if unsafe { libc::kill(self.init_pid, signal) } == 0 {
                        Ok(json!({}))
                    } else {
                        let e = std::io::Error::last_os_error();
                        Err(format!("signal {signal} to container {cid}: {e}"))
                    }
                } else {
                    let sig = signal.to_string();
                    let mut args = vec!["kill"];
                    if all {
                        args.push("--all");
                    }
                    args.push(&cid);
                    args.push(&sig);
                    self.runtime(&args)
                        .map(|()| json!({}))
                        .map_err(|e| e.to_string())
                };
                self.finish(id, r);
            }
            Request::Pause | Request::Resume => {
                let pause = matches!(req, Request::Pause);
                let r = self
                    .runtime(&[if pause { "pause" } else { "resume" }, &cid])
                    .map(|()| {
                        self.status = if pause {
                            ShimStatus::Paused
                        } else {
                            ShimStatus::Running
                        };
                        json!({})
                    })
                    .map_err(|e| e.to_string());
                self.finish(id, r);
            }
            Request::Resize { h, w } => {
                let r = match &self.pty {
                    Some(p) => resize_pty(p, h, w)
                        .map(|()| json!({}))
                        .map_err(|e| format!("resize tty of {cid}: {e}")),
                    None => Err(format!("container {cid} has no tty")),
                };
                self.finish(id, r);
            }
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                self.respond(id, Ok(json!({})));
                if let Some(c) = self.conns.get_mut(&id) {
                    c.mode = Mode::Attach {
                        stdin: stdin && self.stdin.file.is_some(),
                        stdout,
                        stderr,
                    };
                    if self.exit.is_some() {
                        c.close_after_flush = true;
                    }
                }
            }
            Request::Exec(spec) => match self.exec(spec.clone()) {
                Ok(pid) => {
                    self.respond(id, Ok(json!({ "pid": pid })));
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.mode = Mode::Exec {
                            id: spec.exec_id,
                            stdin: spec.stdin,
                            stdout: spec.stdout,
                            stderr: spec.stderr,
                        };
                    }
                }
                Err(e) => self.finish(id, Err(e.to_string())),
            },
            Request::ExecWait { exec_id } => match self.execs.get(&exec_id) {
                None => self.finish(id, Err(format!("no such exec: {exec_id}"))),
                Some(Exec {
                    exit: Some(code), ..
                }) => {
                    let code = *code;
                    self.finish(id, Ok(json!({ "exit_code": code })));
                }
                Some(_) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.mode = Mode::ExecWait(exec_id);
                    }
                }
            },
            Request::ExecState { exec_id } => {
                let r = match self.execs.get(&exec_id) {
                    None => Err(format!("no such exec: {exec_id}")),
                    Some(e) => Ok(json!({
                        "running": e.exit.is_none(),
                        "pid": e.pid,
                        "exit_code": e.exit,
                    })),
                };
                self.finish(id, r);
            }
            Request::ExecResize { exec_id, h, w } => {
                let r = match self.execs.get(&exec_id) {
                    None => Err(format!("no such exec: {exec_id}")),
                    Some(Exec { pty: Some(p), .. }) => resize_pty(p, h, w)
                        .map(|()| json!({}))
                        .map_err(|e| format!("resize tty of exec {exec_id}: {e}")),
                    Some(_) => Err(format!("exec {exec_id} has no tty")),
                };
                self.finish(id, r);
            }
            Request::ExecKill { exec_id, signal } => {
                let r = match self.execs.get(&exec_id) {
                    None => Err(format!("no such exec: {exec_id}")),
                    Some(e) if e.exit.is_some() => Err(format!("exec {exec_id} is not running")),
                    Some(e) => {
                        let sig = Signal::try_from(signal)
                            .map_err(|_| format!("invalid signal {signal}"));
                        sig.and_then(|s| {
                            nix::sys::signal::kill(Pid::from_raw(e.pid), s)
                                .map(|()| json!({}))
                                .map_err(|err| format!("kill exec {exec_id}: {err}"))
                        })
                    }
                };
                self.finish(id, r);
            }
            Request::Shutdown => {
                let running = self.exit.is_none()
                    && matches!(self.status, ShimStatus::Running | ShimStatus::Paused);
                if running {
                    return self.finish(id, Err(format!("container {cid} is still running")));
                }
                self.cleanup();
                self.respond(id, Ok(json!({})));
                if let Some(c) = self.conns.get_mut(&id) {
                    let _ = c.stream.set_nonblocking(false);
                    let _ = c.stream.write_all(&c.wbuf);
                }
                std::process::exit(0);
            }
        }
    }

    fn state(&self) -> Value {
        let status = if self.exit.is_some() {
            ShimStatus::Stopped
        } else {
            self.status
        };
        json!({
            "pid": self.init_pid,
            "status": status,
            "exit_code": self.exit.as_ref().map(|e| e.exit_code),
            "exited_at": self.exit.as_ref().map(|e| e.exited_at.clone()),
        })
    }

    fn exec(&mut self, spec: super::ExecSpec) -> Result<i32, ShimError> {
        if self.init_exit.is_some() || self.status != ShimStatus::Running {
            return Err(ShimError::Runtime(format!(
                "container {} is not running",
                self.cfg.id
            )));
        }
        if self.execs.contains_key(&spec.exec_id) {
            return Err(ShimError::Runtime(format!(
                "exec {} already exists",
                spec.exec_id
            )));
        }
        let dir = self.cfg.state_dir.clone();
        let io_err = |e: io::Error| ShimError::io("set up exec stdio", &dir, e);
        let seq = self.execs.len();
        let proc_file = self.path(&format!("exec-{seq}.json"));
        let pid_file = self.path(&format!("exec-{seq}.pid"));
        let mut process = spec.process.clone();
        process["terminal"] = json!(spec.tty);
        write_atomic(
            &proc_file,
            &serde_json::to_vec(&process).expect("process serializes"),
        )?;
        let _ = fs::remove_file(&pid_file);
        let mut cmd = self.runtime_cmd();
        cmd.arg("exec")
            .arg("--detach")
            .arg("--process")
            .arg(&proc_file)
            .arg("--pid-file")
            .arg(&pid_file);
        let mut stdin_sink = Sink::default();
        let mut new_sources = Vec::new();
        let mut console = None;
        let owner = Owner::Exec(spec.exec_id.clone());
        if spec.tty {
            let (p, for_runtime, l) = self.console_listener()?;
            cmd.arg("--console-socket").arg(&for_runtime);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            console = Some((p, l));
        } else {
            if spec.stdin {
                let (r, w) = pipe().map_err(io_err)?;
                set_nonblocking(&w).map_err(io_err)?;
                stdin_sink.file = Some(File::from(w));
                cmd.stdin(Stdio::from(r));
            } else {
                cmd.stdin(Stdio::null());
            }
            for stream in [1u8, 2u8] {
                let (r, w) = pipe().map_err(io_err)?;
                set_nonblocking(&r).map_err(io_err)?;
                new_sources.push(Source {
                    file: File::from(r),
                    owner: owner.clone(),
                    stream,
                });
                if stream == 1 {
                    cmd.stdout(Stdio::from(w));
                } else {
                    cmd.stderr(Stdio::from(w));
                }
            }
        }
        cmd.arg(&self.cfg.id);
        let offset = self.log_offset();
        let status = cmd
            .status()
            .map_err(|e| ShimError::io("run", &self.cfg.runtime, e))?;
        drop(cmd);
        let _ = fs::remove_file(&proc_file);
        if !status.success() {
            if let Some((p, _)) = &console {
                let _ = fs::remove_file(p);
            }
            return Err(self.runtime_error("exec", offset, "", &status.to_string()));
        }
        let mut pty = None;
        if let Some((p, l)) = console {
            let master = recv_pty(&l).map_err(ShimError::Runtime);
            let _ = fs::remove_file(&p);
            let master = master?;
            set_nonblocking(&master).map_err(io_err)?;
            new_sources.push(Source {
                file: master.try_clone().map_err(io_err)?,
                owner: owner.clone(),
                stream: 1,
            });
            if spec.stdin {
                stdin_sink.file = Some(master.try_clone().map_err(io_err)?);
            }
            pty = Some(master);
        }
        let pid_text =
            fs::read_to_string(&pid_file).map_err(|e| ShimError::io("read", &pid_file, e))?;
        let _ = fs::remove_file(&pid_file);
        let pid: i32 = pid_text.trim().parse().map_err(|_| {
            ShimError::Runtime(format!("bad pid {:?} in {}", pid_text, pid_file.display()))
        })?;
        // A short-lived process may already have been reaped by the loop before we learnt its
        // pid (it reparents to us when the runtime exits).
        let reaped = self
            .unclaimed
            .remove(&pid)
            .map(|code| (code, Instant::now()));
        self.sources.extend(new_sources);
        self.execs.insert(
            spec.exec_id.clone(),
            Exec {
                pid,
                tty: spec.tty,
                pty,
                stdin: stdin_sink,
                reaped,
                exit: None,
            },
        );
        Ok(pid)
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(st) => {
                    let Some((pid, code)) = exit_code(st) else {
                        continue;
                    };
                    if pid == self.init_pid && self.init_exit.is_none() {
                        self.init_exit = Some((code, Instant::now()));
                    } else if let Some(e) = self
                        .execs
                        .values_mut()
                        .find(|e| e.pid == pid && e.reaped.is_none())
                    {
                        e.reaped = Some((code, Instant::now()));
                    } else {
                        // Orphans reparented to us (host pid namespace) would pile up here;
                        // only a just-spawned exec can still claim an entry, so bound it.
                        if self.unclaimed.len() >= 1024 {
                            self.unclaimed.clear();
                        }
                        self.unclaimed.insert(pid, code);
                    }
                }
            }
        }
    }

    /// Record the container's exit once the init is reaped and its output drained.
    fn check_exit(&mut self) {
        let Some((code, at)) = self.init_exit else {
            return;
        };
        if self.exit.is_some() {
            return;
        }
        let open = self.sources.iter().any(|s| s.owner == Owner::Container);
        if open && at.elapsed() < DRAIN_GRACE {
            return;
        }
        self.sources.retain(|s| s.owner != Owner::Container);
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.flush_partial() {
                eprintln!("berth-shim: {e}");
            }
        }
        self.stdin = Sink::default();
        let exit = ExitInfo {
            exit_code: code,
            exited_at: now_rfc3339(),
            oom_killed: !self.cgroups_path.is_empty()
                && crate::cgroups::oom_killed(&self.cgroups_path),
        };
        let data = serde_json::to_vec(&exit).expect("exit serializes");
        if let Err(e) = write_atomic(&self.path("exit.json"), &data) {
            eprintln!("berth-shim: {e}");
        }
        self.status = ShimStatus::Stopped;
        let value = serde_json::to_value(&exit).expect("exit serializes");
        self.exit = Some(exit);
        self.last_activity = Instant::now();
        for c in self.conns.values_mut() {
            match c.mode {
                Mode::Wait => {
                    let mut line = serde_json::to_vec(&Response {
                        error: None,
                        data: value.clone(),
                    })
                    .expect("response serializes");
                    line.push(b'\n');
                    c.wbuf.extend_from_slice(&line);
                    c.close_after_flush = true;
                }
                Mode::Attach { .. } => c.close_after_flush = true,
                _ => {}
            }
        }
    }

    fn check_execs(&mut self) {
        let mut done = Vec::new();
        for (id, e) in &self.execs {
            if e.exit.is_some() {
                continue;
            }
            let Some((_, at)) = e.reaped else { continue };
            let owner = Owner::Exec(id.clone());
            let open = self.sources.iter().any(|s| s.owner == owner);
            if !open || at.elapsed() >= DRAIN_GRACE {
                done.push(id.clone());
            }
        }
        for id in done {
            let owner = Owner::Exec(id.clone());
            self.sources.retain(|s| s.owner != owner);
            let Some(e) = self.execs.get_mut(&id) else {
                continue;
            };
            let code = e.reaped.map(|(c, _)| c).unwrap_or(-1);
            e.exit = Some(code);
            e.stdin = Sink::default();
            e.pty = None;
            self.last_activity = Instant::now();
            for c in self.conns.values_mut() {
                match &c.mode {
                    Mode::ExecWait(x) if *x == id => {
                        let mut line = serde_json::to_vec(&Response {
                            error: None,
                            data: json!({ "exit_code": code }),
                        })
                        .expect("response serializes");
                        line.push(b'\n');
                        c.wbuf.extend_from_slice(&line);
                        c.close_after_flush = true;
                    }
                    Mode::Exec { id: x, .. } if *x == id => c.close_after_flush = true,
                    _ => {}
                }
            }
        }
    }

    fn flush_conns(&mut self) {
        let mut gone = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            if !c.wbuf.is_empty() {
                write_conn(c);
            }
            if c.dead || (c.close_after_flush && c.wbuf.is_empty()) {
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                gone.push(*id);
            }
        }
        for id in gone {
            self.conns.remove(&id);
        }
    }

    /// Delete the container from the runtime and remove our socket and leftovers.
    /// `runtime delete` of the container, once.
    fn delete_from_runtime(&mut self) {
        if self.runtime_deleted {
            return;
        }
        self.runtime_deleted = true;
        if self.exit.is_some() && self.in_place && self.delete_in_place() {
            self.deleted_in_place = true;
            return;
        }
        let id = self.cfg.id.clone();
        let args: &[&str] = if self.exit.is_none() {
            &["delete", "--force", &id]
        } else {
            &["delete", &id]
        };
        if let Err(e) = self.runtime(args) {
            // Already gone is fine; anything else is worth a line in shim.log.
            eprintln!("berth-shim: {e}");
        }
    }

    /// `crun start` without starting crun (a crun process: about 2 ms of every start).
    /// With no hooks and no notify socket, all `crun start` does is release the init held
    /// at its exec barrier: open `<root>/<id>/exec.fifo` for writing (the init holds the
    /// read end), unlink it (crun's mark of a started container: `crun state` says
    /// `running` from then on) and write one byte, which the init reads before it execs
    /// the process. The open does not block: without a reader (the init is gone) it fails
    /// and, like anything unexpected before the unlink, leaves the job and its error
    /// message to `crun start`.
    fn start_in_place(&self) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        // crun given a NOTIFY_SOCKET waits for the container's READY=1 in `start`.
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return false;
        }
        let fifo = self.cfg.runtime_root.join(&self.cfg.id).join("exec.fifo");
        let opened = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        let mut f = match opened {
            Ok(f) => f,
            Err(e) => {
                eprintln!("berth-shim: start in place: open {}: {e}", fifo.display());
                return false;
            }
        };
        if let Err(e) = fs::remove_file(&fifo) {
            eprintln!("berth-shim: start in place: unlink {}: {e}", fifo.display());
            return false;
        }
        // From here on `crun start` could not do better: the fifo is gone either way.
        if let Err(e) = f.write_all(b"0") {
            eprintln!("berth-shim: start in place: write {}: {e}", fifo.display());
        }
        true
    }

    /// `crun delete` of a container whose init has exited, without starting crun (2 to 3 ms
    /// on the exit path of every `run --rm`): with no hooks and no RDT group, all crun
    /// leaves is the container's cgroup and its state directory under `--root`. Only for
    /// crun, whose layout this knows (`<root>/<id>`), and only with a cgroupfs path; false
    /// (and `crun delete` does it) when anything is in the way, such as processes still in
    /// the cgroup (a container sharing the host's pid namespace leaves its children behind).
    fn delete_in_place(&self) -> bool {
        if let Err(e) = crate::cgroups::remove(&self.cgroups_path) {
            eprintln!("berth-shim: delete in place: {e}");
            return false;
        }
        let dir = self.cfg.runtime_root.join(&self.cfg.id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                eprintln!("berth-shim: delete in place: remove {}: {e}", dir.display());
                false
            }
        }
    }

    fn cleanup(&mut self) {
        let force = self.exit.is_none();
        self.delete_from_runtime();
        // A forced delete kills the init; reap it so no zombie outlives us.
        if force {
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.init_exit.is_none() && Instant::now() < deadline {
                self.reap();
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // An in-place delete removed the cgroup already (`deleted_in_place`).
        if !self.cgroups_path.is_empty() && !self.deleted_in_place {
            if let Err(e) = crate::cgroups::remove(&self.cgroups_path) {
                eprintln!("berth-shim: {e}");
            }
        }
        for f in ["shim.sock", "shim.pid", "init.pid"] {
            let _ = fs::remove_file(self.path(f));
        }
    }
}

fn push_output(wbuf: &mut Vec<u8>, tty: bool, stream: u8, data: &[u8]) {
    if !tty {
        wbuf.extend_from_slice(&[stream, 0, 0, 0]);
        wbuf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    }
    wbuf.extend_from_slice(data);
}

fn write_conn(c: &mut Conn) {
    while !c.wbuf.is_empty() {
        match c.stream.write_vectored(&[IoSlice::new(&c.wbuf)]) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                c.wbuf.clear();
                return;
            }
        }
    }
}
