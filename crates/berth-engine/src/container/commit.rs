//! `commit`: a new image from a container's rw layer (`POST /commit`).
//!
//! The image's config is the container's config (not its image's: `docker commit` keeps
//! the container's Cmd, Env, ...), overlaid with the fields the request's body sets, then
//! the Dockerfile-style `changes` are applied by berth-image. A running container is
//! paused while its upper directory is read (unless `pause=0`), so the layer is taken at
//! one point in time; it is unpaused even when the commit fails.

use super::state::Status;
use crate::models::ContainerConfig;
use crate::{Engine, Error, Result};
use berth_image::store::CommitOptions;
use serde_json::Value;
use std::collections::BTreeMap;

/// The parameters of `POST /commit`.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub container: String,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    pub pause: bool,
    pub changes: Vec<String>,
    pub config: Option<ContainerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("invalid reference format: {reference:?}: {reason}")]
    Reference { reference: String, reason: String },
    #[error("container config does not convert to an image config: {0}")]
    Config(String),
}

impl From<CommitError> for Error {
    fn from(e: CommitError) -> Error {
        match e {
            CommitError::Reference { .. } => Error::InvalidArgument(e.to_string()),
            CommitError::Config(_) => Error::Internal(e.to_string()),
        }
    }
}

impl Engine {
    /// Commits the container; returns the new image id ("sha256:...").
    pub async fn commit_container(&self, req: CommitRequest) -> Result<String> {
        let h = self.lookup(&req.container)?;
        let reference = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            None => None,
            Some(repo) => {
                let full = match req.tag.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.to_string(),
                };
                Some(
                    berth_image::Reference::parse(&full).map_err(|e| CommitError::Reference {
                        reference: full.clone(),
                        reason: e.to_string(),
                    })?,
                )
            }
        };
        let c = h.snapshot();
        let config = image_config(&c.config, req.config.as_ref())?;
        let mut created_by = vec![c.path.clone()];
        created_by.extend(c.args.iter().cloned());
        let opts = CommitOptions {
            reference: reference.clone(),
            changes: req.changes.clone(),
            message: req.comment.clone(),
            author: req.author.clone(),
            created_by: Some(created_by.join(" ")),
            config: Some(config),
        };
        let mut paused_here = req.pause && h.status() == Status::Running;
        if paused_here {
            // A container whose process just exited still reads as running until its
            // monitor catches up, and then the runtime refuses the pause; with no process
            // left the layer cannot change, so commit it unpaused (as dockerd does for a
            // stopped container) but report any other failure.
            if let Err(e) = self.pause_container(&h.id).await {
                let gone = h.status() != Status::Running || process_gone(h.snapshot().state.pid);
                if !gone {
                    return Err(e);
                }
                tracing::debug!(id = %h.id, "commit without pause, process gone: {e}");
                paused_here = false;
            }
        }
        let key = h.id.clone();
        let res = self
            .blocking(move |e| Ok(e.images().commit_rw_layer(&key, opts)?))
            .await;
        if paused_here {
            if let Err(e) = self.unpause_container(&h.id).await {
                tracing::warn!(id = %h.id, "unpause after commit: {e}");
            }
        }
        let image = res?;
        let mut attrs = BTreeMap::new();
        attrs.insert("comment".to_string(), req.comment.unwrap_or_default());
        attrs.insert("imageID".to_string(), image.id.clone());
        attrs.insert(
            "imageRef".to_string(),
            reference.map(|r| r.familiar()).unwrap_or_default(),
        );
        self.emit_container(&h, "commit", attrs);
        Ok(image.id)
    }
}

/// Whether the container's init has exited: no such process, or only its zombie is left
/// (the shim reaps it a moment later).
fn process_gone(pid: i64) -> bool {
    if pid <= 0 {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state letter follows the command name, which is in parentheses and may
        // itself contain spaces or parentheses: split at the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}

/// The container's config with every field the request sets taken from the request.
pub fn image_config(
    container: &ContainerConfig,
    request: Option<&ContainerConfig>,
) -> std::result::Result<berth_image::ContainerConfig, CommitError> {
    let mut base =
        serde_json::to_value(container).map_err(|e| CommitError::Config(e.to_string()))?;
    if let Some(r) = request {
        let over = serde_json::to_value(r).map_err(|e| CommitError::Config(e.to_string()))?;
        if let (Some(b), Value::Object(o)) = (base.as_object_mut(), over) {
            for (k, v) in o {
                let unset = match &v {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    Value::Bool(b) => !b,
                    Value::Array(a) => a.is_empty(),
                    Value::Object(m) => m.is_empty(),
                    Value::Number(_) => false,
                };
                if !unset {
                    b.insert(k, v);
                }
            }
        }
    }
    // The image's config does not carry the container's image name.
    if let Some(b) = base.as_object_mut() {
        b.remove("Image");
    }
    serde_json::from_value(base).map_err(|e| CommitError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fields_override_the_container() {
        let c = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            env: Some(vec!["A=1".into()]),
            image: "busybox".into(),
            working_dir: "/srv".into(),
            ..Default::default()
        };
        let r = ContainerConfig {
            cmd: Some(vec!["echo".into(), "x".into()]),
            ..Default::default()
        };
        let cfg = image_config(&c, Some(&r)).expect("converts");
        assert_eq!(cfg.cmd, Some(vec!["echo".to_string(), "x".to_string()]));
        assert_eq!(cfg.env, Some(vec!["A=1".to_string()]));
        assert_eq!(cfg.working_dir.as_deref(), Some("/srv"));
        assert!(!cfg.extra.contains_key("Image"));
        let cfg = image_config(&c, None).expect("converts");
        assert_eq!(cfg.cmd, Some(vec!["sh".to_string()]));
    }
}
