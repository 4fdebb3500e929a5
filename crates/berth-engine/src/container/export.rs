//! `export`: the container's merged filesystem as one tar (`docker export`).
//!
//! The tar is written from the container root as [`Engine::with_rootfs`] provides it (the
//! live rootfs mount, or the rw layer mounted for the call), with the same no-follow tree
//! writer `docker cp` uses. Entry names are relative (`bin/`, `etc/passwd`), as docker's.
//! Only the overlay is exported: the host-side rootfs mount carries no `/proc`, `/sys` or
//! bind mounts, so those appear as the (usually empty) directories of the image.

use super::archive::{write_tree, ArchiveError, ChannelWriter};
use crate::{Engine, Result};
use std::collections::HashMap;
use std::io::Write;
use tokio::sync::mpsc;

impl Engine {
    /// Streams the tar of the container's filesystem; errors after the first bytes end the
    /// stream early (the client sees a truncated tar, as with dockerd).
    pub async fn export_container(&self, name: &str) -> Result<mpsc::Receiver<Vec<u8>>> {
        let h = self.lookup(name)?;
        let (tx, rx) = mpsc::channel(16);
        let engine = self.clone();
        tokio::spawn(async move {
            let res = engine
                .with_rootfs(&h, move |root, _| {
                    let mut w = ChannelWriter::new(tx);
                    let mut b = tar::Builder::new(&mut w);
                    b.mode(tar::HeaderMode::Complete);
                    write_tree(&mut b, root, "", &mut HashMap::new())?;
                    b.finish().map_err(ArchiveError::Tar)?;
                    drop(b);
                    w.flush().map_err(ArchiveError::Tar)?;
                    Ok(())
                })
                .await;
            match res {
                Ok(()) => engine.emit_container(&h, "export", Default::default()),
                Err(e) => tracing::warn!(id = %h.id, "export: {e}"),
            }
        });
        Ok(rx)
    }
}
