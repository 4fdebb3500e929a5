//! `exec`: extra processes in a running container, run by the container's shim through the
//! OCI runtime's `exec`, so they join the container's namespaces and cgroup.
//!
//! The process gets the container's security settings (capabilities, no-new-privileges,
//! seccomp come from the bundle's `process`), with the exec's own args, env, cwd, user and
//! terminal; `--privileged` grants every capability.

use crate::container::state::Status;
use crate::{util, Engine, Error, Result};
use berth_runtime::shim::{ExecSpec, ShimClient};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// dockerd's wording for a failed exec, which the docker CLI prints; the runtime's own text
/// is kept at the end.
pub fn exec_error_message(runtime_msg: &str) -> String {
    let prefix = "OCI runtime exec failed: exec failed: unable to start container process";
    match crate::container::start::missing_binary_detail(runtime_msg) {
        Some(detail) => format!("{prefix}: {detail}: unknown"),
        None if crate::container::start::not_executable(runtime_msg) => {
            format!("{prefix}: exec: permission denied: unknown ({runtime_msg})")
        }
        None => format!("{prefix}: {runtime_msg}: unknown"),
    }
}

#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// Go's decoder matches names case-insensitively; docker-py sends `detachKeys`.
    #[serde(alias = "detachKeys")]
    pub detach_keys: String,
    pub tty: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
    pub console_size: Option<[u16; 2]>,
}

#[derive(Debug, Default, Clone)]
pub struct ExecStatus {
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub pid: u32,
}

pub struct ExecHandle {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub status: Mutex<ExecStatus>,
    /// Signalled when the exit code has been recorded (see [`Engine::exec_settle`]).
    exited: tokio::sync::Notify,
    /// Keeps the cgroup migration lock warm from create until the process exists.
    warm: Mutex<Option<crate::container::start::WarmGuard>>,
}

impl Engine {
    pub fn exec_create(&self, container: &str, cfg: ExecConfig) -> Result<String> {
        let h = self.lookup(container)?;
        match h.status() {
            Status::Running => {}
            Status::Paused => {
                return Err(Error::Conflict(format!(
                    "Container {} is paused, unpause the container before exec",
                    h.id
                )))
            }
            _ => {
                return Err(Error::Conflict(format!(
                    "Container {} is not running",
                    h.id
                )))
            }
        }
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        let id = util::new_id();
        let mut attrs = BTreeMap::new();
        attrs.insert("execID".into(), id.clone());
        let cmdline = cfg.cmd.clone().unwrap_or_default().join(" ");
        self.inner.execs.lock().expect("exec table lock").insert(
            id.clone(),
            Arc::new(ExecHandle {
                id: id.clone(),
                container_id: h.id.clone(),
                config: cfg,
                status: Mutex::new(ExecStatus::default()),
                exited: tokio::sync::Notify::new(),
                // The start request follows within a millisecond or two and the runtime's
                // move of the process a few after: warming starts now, ends once it exists.
                warm: Mutex::new(Some(
                    self.warm_cgroup_migration(std::time::Duration::from_millis(500)),
                )),
            }),
        );
        self.emit_container(&h, &format!("exec_create: {cmdline}"), attrs);
        Ok(id)
    }

    fn exec_handle(&self, id: &str) -> Result<Arc<ExecHandle>> {
        self.inner
            .execs
            .lock()
            .expect("exec table lock")
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }

    /// Builds the OCI process for the exec from the container's bundle.
    fn exec_process(&self, e: &ExecHandle) -> Result<Value> {
        let c = self.lookup(&e.container_id)?.snapshot();
        let state_dir = self.config().container_state_dir(&c.id);
        let spec: Value = serde_json::from_slice(
            &std::fs::read(state_dir.join("config.json"))
                .map_err(|err| Error::io("read container bundle", err))?,
        )
        .map_err(|err| Error::Internal(format!("container bundle: {err}")))?;
        let mut p = spec["process"].clone();
        let cfg = &e.config;
        let mut env: Vec<String> = p["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for kv in cfg.env.iter().flatten() {
            let k = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(k));
            env.push(kv.clone());
        }
        if cfg.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        p["env"] = json!(env);
        p["args"] = json!(cfg.cmd.clone().unwrap_or_default());
        p["terminal"] = json!(cfg.tty);
        if !cfg.working_dir.is_empty() {
            p["cwd"] = json!(cfg.working_dir);
        }
        if !cfg.user.is_empty() {
            let u = berth_runtime::user::resolve_user(&state_dir.join("rootfs"), &cfg.user)
                .map_err(|err| Error::InvalidArgument(err.to_string()))?;
            p["user"] = json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids});
        }
        if cfg.privileged {
            let all = berth_runtime::spec::capabilities(&["ALL".to_string()], &[], false)
                .map_err(|err| Error::Internal(err.to_string()))?;
            for set in ["bounding", "effective", "permitted"] {
                p["capabilities"][set] = json!(all);
            }
        }
        if let Some([h, w]) = cfg.console_size {
            p["consoleSize"] = json!({"height": h, "width": w});
        }
        Ok(p)
    }

    /// Starts the exec. Returns the I/O stream unless detached; the exit is tracked either way.
    pub async fn exec_start(
        &self,
        id: &str,
        detach: bool,
    ) -> Result<Option<tokio::net::UnixStream>> {
        let e = self.exec_handle(id)?;
        {
            let mut st = e.status.lock().expect("exec status lock");
            if st.started {
                return Err(Error::Conflict(format!(
                    "Error: Exec command {id} has already run"
                )));
            }
            st.started = true;
            st.running = true;
        }
        let h = self.lookup(&e.container_id)?;
        if h.status() != Status::Running {
            e.status.lock().expect("exec status lock").running = false;
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                h.id
            )));
        }
        let process = self.exec_process(&e)?;
        // No probe connection: a shim that is gone fails the exec call itself just the same.
        let client = ShimClient::new(&self.config().container_state_dir(&h.id));
        let cfg = &e.config;
        let spec = ExecSpec {
            exec_id: id.to_string(),
            process,
            tty: cfg.tty,
            stdin: cfg.attach_stdin && !detach,
            stdout: cfg.attach_stdout && !detach,
            stderr: cfg.attach_stderr && !detach,
        };
        let spawned = client.exec_with_pid(spec).await;
        // The process is in its cgroup (or failed to start): the warm-up is done.
        e.warm.lock().expect("exec warm lock").take();
        let (pid, stream) = spawned.map_err(|err| {
            let msg = exec_error_message(&err.to_string());
            // dockerd records 126 for every exec that fails to start, a missing binary
            // included (its ContainerExecStart overrides the 127 of the start-error mapping).
            let code = 126;
            let mut st = e.status.lock().expect("exec status lock");
            st.running = false;
            st.exit_code = Some(code);
            Error::Internal(msg)
        })?;
        e.status.lock().expect("exec status lock").pid = pid;
        let mut attrs = BTreeMap::new();
        attrs.insert("execID".into(), id.to_string());
        let cmdline = cfg.cmd.clone().unwrap_or_default().join(" ");
        self.emit_container(&h, &format!("exec_start: {cmdline}"), attrs.clone());
        let engine = self.clone();
        let e2 = e.clone();
        let h2 = h.clone();
        tokio::spawn(async move {
            let dir = engine.config().container_state_dir(&h2.id);
            let code = ShimClient::new(&dir).exec_wait(&e2.id).await.unwrap_or(-1);
            {
                let mut st = e2.status.lock().expect("exec status lock");
                st.running = false;
                st.exit_code = Some(code);
            }
            e2.exited.notify_waiters();
            attrs.insert("exitCode".into(), code.to_string());
            engine.emit_container(&h2, "exec_die", attrs);
        });
        Ok(if detach { None } else { Some(stream) })
    }

    /// Waits (at most a second) until the exec's exit code is recorded. The API calls this
    /// when the process's stream has ended, before it closes the client's connection: the
    /// client inspects the exec right after, and finds the code here instead of making
    /// berthd ask the shim again.
    pub async fn exec_settle(&self, id: &str) {
        let Ok(e) = self.exec_handle(id) else {
            return;
        };
        let settled = async {
            loop {
                let notified = e.exited.notified();
                tokio::pin!(notified);
                // Registered before the check, so a notification in between is not lost.
                notified.as_mut().enable();
                if !e.status.lock().expect("exec status lock").running {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), settled).await;
    }

    /// Exec state as Docker reports it. While the exec is believed running the shim is asked,
    /// so a client that inspects right after the stream closed sees the real exit code rather
    /// than racing the exit monitor.
    pub async fn exec_inspect(&self, id: &str) -> Result<Value> {
        let e = self.exec_handle(id)?;
        let running = e.status.lock().expect("exec status lock").running;
        if running {
            let dir = self.config().container_state_dir(&e.container_id);
            if let Ok(s) = ShimClient::new(&dir).exec_state(id).await {
                let mut st = e.status.lock().expect("exec status lock");
                if !s.running && s.exit_code.is_some() {
                    st.running = false;
                    st.exit_code = s.exit_code;
                }
                if s.pid != 0 {
                    st.pid = s.pid;
                }
            }
        }
        let st = e.status.lock().expect("exec status lock").clone();
        let cmd = e.config.cmd.clone().unwrap_or_default();
        Ok(json!({
            "ID": e.id,
            "Running": st.running,
            "ExitCode": st.exit_code,
            "ProcessConfig": {
                "tty": e.config.tty,
                "entrypoint": cmd.first().cloned().unwrap_or_default(),
                "arguments": cmd.get(1..).unwrap_or_default(),
                "privileged": e.config.privileged,
                "user": e.config.user,
            },
            "OpenStdin": e.config.attach_stdin,
            "OpenStderr": e.config.attach_stderr,
            "OpenStdout": e.config.attach_stdout,
            "CanRemove": false,
            "ContainerID": e.container_id,
            "DetachKeys": e.config.detach_keys,
            "Pid": st.pid,
        }))
    }

    pub fn exec_tty(&self, id: &str) -> Result<bool> {
        Ok(self.exec_handle(id)?.config.tty)
    }

    /// The detach sequence an attached client may type, as given at create ("" for the
    /// default): only a TTY exec with stdin watches for one, as in dockerd.
    pub fn exec_detach_keys(&self, id: &str) -> Result<Option<String>> {
        let e = self.exec_handle(id)?;
        Ok((e.config.tty && e.config.attach_stdin).then(|| e.config.detach_keys.clone()))
    }

    pub async fn exec_resize(&self, id: &str, h: u16, w: u16) -> Result<()> {
        let e = self.exec_handle(id)?;
        let client = ShimClient::connect(&self.config().container_state_dir(&e.container_id))
            .await
            .map_err(|err| Error::Internal(format!("connect to shim: {err}")))?;
        client
            .exec_resize(id, h, w)
            .await
            .map_err(|err| Error::Internal(format!("resize exec: {err}")))
    }

    /// Forgets the execs of a container that is gone.
    pub(crate) fn drop_execs_of(&self, container_id: &str) {
        self.inner
            .execs
            .lock()
            .expect("exec table lock")
            .retain(|_, e| e.container_id != container_id);
    }
}
