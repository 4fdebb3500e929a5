//! Runtime processes started before their command: the dynamic loading of crun off the
//! start path.
//!
//! Starting crun is mostly its dynamic loader's work: Debian's crun binds ten libraries at
//! load (libsystemd brings libgcrypt, liblzma, libzstd, liblz4, libgpg-error), about 1.1 ms
//! of every `crun create` on this VM, more than half of crun's own start-up, and the
//! target for `run --rm` is measured against one whole `crun run`. A spare shim therefore
//! starts its runtime ahead too, as a [`PreloadedRuntime`]: the sealed runtime binary with
//! a small preload library (`preload/hook.rs`, built by the build script and embedded
//! here) that stands in for glibc's `__libc_start_main`. Once the loader is done, the
//! process waits on its stdin, a socket, for the command line, the working directory and
//! the three standard descriptors, then enters the runtime's `main` with them, at nice 0.
//! The command runs exactly as a freshly spawned runtime would (same binary, environment,
//! cgroup and parent, so the same subreaper), only without the wait for the loader.
//!
//! The library only works with a dynamically linked glibc program, so only crun is started
//! this way. Should the process be gone when its command comes (the preload failed and it
//! ran without a command, or someone killed it), [`PreloadedRuntime::run`] says so and the
//! caller spawns the runtime as usual. The library is handed over as a sealed memfd, like
//! the runtime itself, so nothing a container can reach maps into the runtime.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;

/// The library built by the build script; empty where it could not be built.
static LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libberth_preload.so"));

/// The sealed memfd of the library, made once per process.
fn library() -> Option<&'static OwnedFd> {
    static FD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    FD.get_or_init(|| {
        if LIBRARY.is_empty() {
            return None;
        }
        let fd = crate::sealed::executable_memfd("berth:preload").ok()?;
        let mut f = File::from(fd);
        f.write_all(LIBRARY).ok()?;
        crate::sealed::seal(&f).ok()?;
        Some(f.into())
    })
    .as_ref()
}

/// Whether this build carries the preload library.
pub fn available() -> bool {
    !LIBRARY.is_empty()
}

/// A runtime process that has loaded and waits for its command (see the module docs).
#[derive(Debug)]
pub struct PreloadedRuntime {
    child: Child,
    job: UnixStream,
    arg0: OsString,
}

impl PreloadedRuntime {
    /// Starts `exe` (a path execve can open, such as `/proc/self/fd/N` of a sealed copy)
    /// named `arg0`, with its stdout and stderr on /dev/null until its command comes. It
    /// inherits this process's environment, nice value and working directory.
    pub fn spawn(exe: &Path, arg0: &std::ffi::OsStr) -> io::Result<PreloadedRuntime> {
        let lib = library().ok_or_else(|| io::Error::other("no preload library in this build"))?;
        let (ours, theirs) = seqpacket_pair()?;
        let mut cmd = Command::new(exe);
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
        // The loader opens the library by this path in the child; our descriptor stays
        // close-on-exec, and the path through our pid lives as long as we do.
        cmd.env(
            "LD_PRELOAD",
            format!("/proc/{}/fd/{}", std::process::id(), lib.as_raw_fd()),
        )
        .env("BERTH_PRELOAD_JOB", "1")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = cmd.spawn()?;
        Ok(PreloadedRuntime {
            child,
            job: UnixStream::from(ours),
            arg0: arg0.to_os_string(),
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Hands the process its command line (`args`, without argv[0]), working directory
    /// and standard descriptors, and waits for it to exit. `None` when it cannot take the
    /// command (it is gone, and reaped): the caller runs the command some other way.
    pub fn run(
        mut self,
        cwd: &Path,
        args: &[OsString],
        stdio: [BorrowedFd<'_>; 3],
    ) -> Option<io::Result<ExitStatus>> {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return None;
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(cwd.as_os_str().as_bytes());
        msg.push(0);
        // argv[0]: the runtime names itself after it in messages.
        msg.extend_from_slice(self.arg0.as_bytes());
        msg.push(0);
        for a in args {
            msg.extend_from_slice(a.as_bytes());
            msg.push(0);
        }
        let fds = [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ];
        send_with_fds(self.job.as_fd(), &msg, &fds).ok()?;
        Some(self.child.wait())
    }
}

impl Drop for PreloadedRuntime {
    fn drop(&mut self) {
        // Unused: EOF on its socket makes it exit 0 (see `preload/hook.rs`); reap it. A
        // process that ran its command was waited for already.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.job.shutdown(std::net::Shutdown::Both);
            let _ = self.child.wait();
        }
    }
}

fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    Ok((a, b))
}

fn send_with_fds(sock: BorrowedFd<'_>, msg: &[u8], fds: &[i32]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(msg)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let n = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(io::Error::from)?;
    if n != msg.len() {
        return Err(io::Error::other("short send of the runtime's command"));
    }
    Ok(())
}
