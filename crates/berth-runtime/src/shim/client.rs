//! The async (tokio) client berthd uses to talk to a shim over `state_dir/shim.sock`.
//!
//! Every call opens its own connection: requests such as `wait` block for as long as the
//! container runs, and `attach` / `exec` turn their connection into a raw stream, so sharing
//! one connection would serialise unrelated work. Unix socket connects are cheap.
//!
//! The answer line is read with `MSG_PEEK` first and then consumed up to its newline: the
//! bytes after it belong to the raw stream of `attach` / `exec` and must stay in the socket,
//! and reading one byte per syscall (the simple way to guarantee that) cost a wake-up per
//! byte on the exec round trip.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{ExecSpec, ExecState, ExitInfo, Request, Response, ShimError, ShimState};

/// A handle on one container's shim.
#[derive(Debug, Clone)]
pub struct ShimClient {
    socket: PathBuf,
}

/// Longest answer line we accept; answers are small JSON objects.
const MAX_LINE: usize = 1 << 20;

impl ShimClient {
    /// Check that the shim in `state_dir` answers and return a client for it.
    pub async fn connect(state_dir: &Path) -> Result<ShimClient, ShimError> {
        let client = ShimClient::new(state_dir);
        client.open().await?;
        Ok(client)
    }

    /// A client for the shim in `state_dir` without a probe connection: the first call
    /// reports a shim that is not there. Hot paths (exec) use this to save a round trip.
    pub fn new(state_dir: &Path) -> ShimClient {
        ShimClient {
            socket: state_dir.join("shim.sock"),
        }
    }

    async fn open(&self) -> Result<UnixStream, ShimError> {
        let err = |source| ShimError::Connect {
            path: self.socket.clone(),
            source,
        };
        let (path, _dir) = super::short_socket_path(&self.socket).map_err(err)?;
        UnixStream::connect(&path).await.map_err(err)
    }

    /// Send `req`, read the answer line; the stream is positioned right after it.
    async fn call(&self, req: &Request) -> Result<(Value, UnixStream), ShimError> {
        let mut s = self.open().await?;
        let mut line = serde_json::to_vec(req).expect("request serializes");
        line.push(b'\n');
        s.write_all(&line)
            .await
            .map_err(|e| ShimError::io("write request to", &self.socket, e))?;
        let buf = read_line(&mut s)
            .await
            .map_err(|e| ShimError::io("read answer from", &self.socket, e))?
            .ok_or_else(|| {
                ShimError::Protocol(format!(
                    "shim at {} closed the connection without answering",
                    self.socket.display()
                ))
            })?;
        let resp: Response = serde_json::from_slice(&buf)
            .map_err(|e| ShimError::Protocol(format!("bad answer: {e}")))?;
        match resp.error {
            Some(e) => Err(ShimError::Remote(e)),
            None => Ok((resp.data, s)),
        }
    }

    async fn call_as<T: DeserializeOwned>(&self, req: &Request) -> Result<T, ShimError> {
        let (v, _) = self.call(req).await?;
        serde_json::from_value(v).map_err(|e| ShimError::Protocol(format!("bad answer: {e}")))
    }

    async fn call_unit(&self, req: &Request) -> Result<(), ShimError> {
        self.call(req).await.map(|_| ())
    }

    pub async fn start(&self) -> Result<(), ShimError> {
        self.call_unit(&Request::Start).await
    }

    pub async fn state(&self) -> Result<ShimState, ShimError> {
        self.call_as(&Request::State).await
    }

    /// Block until the container has exited.
    pub async fn wait(&self) -> Result<ExitInfo, ShimError> {
        self.call_as(&Request::Wait).await
    }

    pub async fn kill(&self, sig: i32, all: bool) -> Result<(), ShimError> {
        self.call_unit(&Request::Kill { signal: sig, all }).await
    }

    pub async fn pause(&self) -> Result<(), ShimError> {
        self.call_unit(&Request::Pause).await
    }

    pub async fn resume(&self) -> Result<(), ShimError> {
        self.call_unit(&Request::Resume).await
    }

    pub async fn resize(&self, h: u16, w: u16) -> Result<(), ShimError> {
        self.call_unit(&Request::Resize { h, w }).await
    }

    /// Attach to the container's stdio. The returned stream carries Docker's multiplexed
    /// frames (or raw bytes for a TTY) and takes stdin; it reaches EOF after the exit.
    pub async fn attach(
        &self,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<UnixStream, ShimError> {
        let (_, s) = self
            .call(&Request::Attach {
                stdin,
                stdout,
                stderr,
            })
            .await?;
        Ok(s)
    }

    /// Run a process in the container; the stream works like [`ShimClient::attach`]'s.
    pub async fn exec(&self, spec: ExecSpec) -> Result<UnixStream, ShimError> {
        let (_, s) = self.call(&Request::Exec(spec)).await?;
        Ok(s)
    }

    /// Like [`ShimClient::exec`], also returning the process id from the shim's answer
    /// (saves an `exec_state` round trip).
    pub async fn exec_with_pid(&self, spec: ExecSpec) -> Result<(u32, UnixStream), ShimError> {
        let (v, s) = self.call(&Request::Exec(spec)).await?;
        let pid = v["pid"].as_u64().unwrap_or(0) as u32;
        Ok((pid, s))
    }

    /// Block until the exec'd process has exited; its exit code (128 + signal if killed).
    pub async fn exec_wait(&self, exec_id: &str) -> Result<i64, ShimError> {
        #[derive(serde::Deserialize)]
        struct Code {
            exit_code: i64,
        }
        let c: Code = self
            .call_as(&Request::ExecWait {
                exec_id: exec_id.to_string(),
            })
            .await?;
        Ok(c.exit_code)
    }

    pub async fn exec_state(&self, exec_id: &str) -> Result<ExecState, ShimError> {
        self.call_as(&Request::ExecState {
            exec_id: exec_id.to_string(),
        })
        .await
    }

    pub async fn exec_resize(&self, exec_id: &str, h: u16, w: u16) -> Result<(), ShimError> {
        self.call_unit(&Request::ExecResize {
            exec_id: exec_id.to_string(),
            h,
            w,
        })
        .await
    }

    pub async fn exec_kill(&self, exec_id: &str, signal: i32) -> Result<(), ShimError> {
        self.call_unit(&Request::ExecKill {
            exec_id: exec_id.to_string(),
            signal,
        })
        .await
    }

    /// Delete the container from the runtime and stop the shim. Refused while it runs.
    pub async fn shutdown(&self) -> Result<(), ShimError> {
        self.call_unit(&Request::Shutdown).await
    }
}

/// Reads one `\n`-terminated line (returned without the newline) and nothing after it;
/// `None` when the peer closed before a full line.
async fn read_line(s: &mut UnixStream) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::fd::AsRawFd;
    let mut line = Vec::with_capacity(256);
    let mut peeked = [0u8; 4096];
    loop {
        s.readable().await?;
        let fd = s.as_raw_fd();
        let n = match s.try_io(tokio::io::Interest::READABLE, || {
            nix::sys::socket::recv(fd, &mut peeked, nix::sys::socket::MsgFlags::MSG_PEEK)
                .map_err(std::io::Error::from)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(None);
        }
        let (take, done) = match peeked[..n].iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (n, false),
        };
        // The peeked bytes are in the socket buffer: this read returns them at once.
        s.read_exact(&mut peeked[..take]).await?;
        line.extend_from_slice(&peeked[..take]);
        if done {
            line.pop();
            return Ok(Some(line));
        }
        if line.len() > MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "answer line too long",
            ));
        }
    }
}

/// The recorded exit of the container in `state_dir`, if it has exited.
pub fn read_exit_file(state_dir: &Path) -> Option<ExitInfo> {
    let data = std::fs::read(state_dir.join("exit.json")).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Whether a shim is serving `state_dir` (its socket accepts connections).
pub fn shim_alive(state_dir: &Path) -> bool {
    match super::short_socket_path(&state_dir.join("shim.sock")) {
        Ok((path, _dir)) => std::os::unix::net::UnixStream::connect(path).is_ok(),
        Err(_) => false,
    }
}
