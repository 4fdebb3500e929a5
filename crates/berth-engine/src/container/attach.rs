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
                replay.push(b);
            }
        }
        if !o.stream {
            return Ok(Attached {
                tty,
                replay,
                stream: None,
            });
        }
        let rx = {
            let _op = h.op.lock().await;
            match h.status() {
                Status::Running => None,
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
                    Some(rx)
                }
                s => {
                    return Err(Error::Conflict(format!(
                        "cannot attach to a container in state {}",
                        s.as_str()
                    )))
                }
            }
        };
        let stream = match rx {
            Some(rx) => match rx.await {
                Ok(r) => r?,
                Err(_) => {
                    return Ok(Attached {
                        tty,
                        replay,
                        stream: None,
                    })
                }
            },
            None => {
                berth_runtime::shim::ShimClient::connect(&self.config().container_state_dir(&c.id))
                    .await
                    .map_err(|e| Error::Internal(format!("connect to shim: {e}")))?
                    .attach(o.stdin, o.stdout, o.stderr)
                    .await
                    .map_err(|e| Error::Internal(format!("attach: {e}")))?
            }
        };
        self.emit_container(&h, "attach", Default::default());
        Ok(Attached {
            tty,
            replay,
            stream: Some(stream),
        })
    }

    /// A client left an attach with the detach keys: dockerd's `detach` event.
    pub fn container_detached(&self, name: &str) {
        if let Ok(h) = self.lookup(name) {
            self.emit_container(&h, "detach", Default::default());
        }
    }
}
