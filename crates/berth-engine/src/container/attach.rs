//! `attach`: a raw stream to the container's stdio through its shim.
//!
//! For a container that has not started yet the request is parked and connected by `start`
//! before the process runs (how `docker run` attaches without losing early output).

use super::state::Status;
use super::PendingAttach;
use crate::{Engine, Error, Result};
use tokio::sync::oneshot;

pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub logs: bool,
    pub stream: bool,
}

pub struct Attached {
    pub tty: bool,
    /// Log replay (already framed) to send before the live stream.
    pub replay: Vec<Vec<u8>>,
    /// The live stream, absent when `stream=0` or the container is not running.
    pub stream: Option<tokio::net::UnixStream>,
}

/// How a prepared attach gets its stream.
enum Connect {
    /// `stream=0`: replay only.
    None,
    /// The container runs: connect to its shim now.
    Live,
    /// Parked: `start` sends the stream when it connects the attaches.
    AtStart(oneshot::Receiver<Result<tokio::net::UnixStream>>),
}

/// An attach registered with [`Engine::attach_prepare`], connected with
/// [`PreparedAttach::connect`].
pub struct PreparedAttach {
    h: std::sync::Arc<super::ContainerHandle>,
    tty: bool,
    replay: Vec<Vec<u8>>,
    how: Connect,
    o: AttachOptions,
}

impl PreparedAttach {
    /// Waits for the container's stream (for a parked attach, until `start` runs).
    pub async fn connect(self, engine: &Engine) -> Result<Attached> {
        let PreparedAttach {
            h,
            tty,
            replay,
            how,
            o,
        } = self;
        let stream = match how {
            Connect::None => {
                return Ok(Attached {
                    tty,
                    replay,
                    stream: None,
                })
            }
            Connect::AtStart(rx) => match rx.await {
                Ok(r) => r?,
                Err(_) => {
                    return Ok(Attached {
                        tty,
                        replay,
                        stream: None,
                    })
                }
            },
            Connect::Live => berth_runtime::shim::ShimClient::connect(
                &engine.config().container_state_dir(&h.id),
            )
            .await
            .map_err(|e| Error::Internal(format!("connect to shim: {e}")))?
            .attach(o.stdin, o.stdout, o.stderr)
            .await
            .map_err(|e| Error::Internal(format!("attach: {e}")))?,
        };
        engine.emit_container(&h, "attach", Default::default());
        Ok(Attached {
            tty,
            replay,
            stream: Some(stream),
        })
    }
}

impl Engine {
    /// Checks the container can be attached to; the caller answers 101 only after this.
    pub fn attach_precheck(&self, name: &str) -> Result<bool> {
        let h = self.lookup(name)?;
        let c = h.snapshot();
        if c.state.status() == Status::Paused {
            return Err(Error::Conflict(
                "You cannot attach to a paused container, unpause it first".into(),
            ));
        }
        Ok(c.config.tty)
    }

    pub async fn attach_container(&self, name: &str, o: AttachOptions) -> Result<Attached> {
        self.attach_prepare(name, o).await?.connect(self).await
    }

    /// The first half of an attach: the log replay and, for a container that has not
    /// started, its place among the streams `start` connects before the process runs.
    /// A hijacked attach does this before answering 101: the docker CLI calls `start` as
    /// soon as it has the 101, and an attach registered after that start would miss the
    /// container's first output (a `docker run --rm busybox echo` could print nothing).
    pub async fn attach_prepare(&self, name: &str, o: AttachOptions) -> Result<PreparedAttach> {
        let h = self.lookup(name)?;
        let c = h.snapshot();
        let tty = c.config.tty;
        let mut replay = Vec::new();
        if o.logs {
            let (_, mut rx) = self
                .logs(
                    &c.id,
                    super::logs::LogOptions {
                        stdout: o.stdout,
                        stderr: o.stderr,
                        ..Default::default()
                    },
                )
                .await?;
            while let Some(b) = rx.recv().await {
                replay.push(Vec::from(b));
            }
        }
        if !o.stream {
            return Ok(PreparedAttach {
                h,
                tty,
                replay,
                how: Connect::None,
                o,
            });
        }
        let how = {
            let _op = h.op.lock().await;
            match h.status() {
                Status::Running => Connect::Live,
                Status::Created | Status::Exited | Status::Restarting => {
                    let (tx, rx) = oneshot::channel();
                    h.pending_attaches
                        .lock()
                        .expect("attach lock")
                        .push(PendingAttach {
                            stdin: o.stdin,
                            stdout: o.stdout,
                            stderr: o.stderr,
                            reply: tx,
                        });
                    Connect::AtStart(rx)
                }
                s => {
                    return Err(Error::Conflict(format!(
                        "cannot attach to a container in state {}",
                        s.as_str()
                    )))
                }
            }
        };
        Ok(PreparedAttach {
            h,
            tty,
            replay,
            how,
            o,
        })
    }
    /// A client left an attach with the detach keys: dockerd's `detach` event.
    pub fn container_detached(&self, name: &str) {
        if let Ok(h) = self.lookup(name) {
            self.emit_container(&h, "detach", Default::default());
        }
    }
}
