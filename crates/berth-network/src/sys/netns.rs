//! Running code inside another network namespace without moving the daemon's threads.
//!
//! `setns(CLONE_NEWNET)` and `unshare(CLONE_NEWNET)` change the namespace of the calling
//! thread only. Doing that on a tokio worker would leave a pooled thread in a container's
//! namespace and make every later task on it act there, so each operation gets a fresh,
//! short-lived OS thread that switches namespace, does its work and exits. Sockets it opens
//! stay bound to that namespace and can then be used from any thread (that is how the
//! embedded DNS listens on 127.0.0.11 inside each container). Netlink work in the helper
//! runs on a tiny current-thread runtime owned by the helper.

use std::fs::File;
use std::future::Future;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::SysError;

/// Where the helper thread goes before running its work.
enum Target {
    Enter(PathBuf),
    Fresh,
}

fn spawn_helper<T, F>(
    target: Target,
    label: PathBuf,
    f: F,
) -> impl Future<Output = Result<T, SysError>>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SysError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let result = (|| {
                match &target {
                    Target::Enter(path) => {
                        let file = File::open(path).map_err(|source| SysError::Io {
                            op: "open netns",
                            path: path.clone(),
                            source,
                        })?;
                        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                            SysError::Os {
                                op: format!("setns {}", path.display()),
                                source,
                            }
                        })?;
                    }
                    Target::Fresh => {
                        unshare(CloneFlags::CLONE_NEWNET).map_err(|source| SysError::Os {
                            op: "unshare(CLONE_NEWNET)".into(),
                            source,
                        })?;
                    }
                }
                f()
            })();
            // The receiver only disappears when the caller was cancelled; nothing to do then.
            let _ = tx.send(result);
        });
    async move {
        spawned.map_err(|source| SysError::Io {
            op: "spawn netns helper thread for",
            path: label.clone(),
            source,
        })?;
        rx.await.map_err(|_| SysError::HelperPanicked(label))?
    }
}

/// Runs `f` on a fresh thread inside the namespace at `path`.
pub async fn run_in<T, F>(path: &Path, f: F) -> Result<T, SysError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SysError> + Send + 'static,
{
    spawn_helper(Target::Enter(path.to_path_buf()), path.to_path_buf(), f).await
}

/// Runs netlink work (`f` gets an rtnetlink handle of that namespace) inside `path`.
pub async fn netlink_in<T, F, Fut>(path: &Path, f: F) -> Result<T, SysError>
where
    T: Send + 'static,
    F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, SysError>>,
{
    run_in(path, move || block_on_netlink(f)).await
}

fn block_on_netlink<T, F, Fut>(f: F) -> Result<T, SysError>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: Future<Output = Result<T, SysError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| SysError::Io {
            op: "build helper runtime for",
            path: PathBuf::from("netns"),
            source,
        })?;
    rt.block_on(async move {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| SysError::Io {
            op: "open netlink socket in",
            path: PathBuf::from("netns"),
            source,
        })?;
        let task = tokio::spawn(conn);
        let out = f(handle).await;
        task.abort();
        out
    })
}

/// Creates a namespace, sets `lo` up in it and bind-mounts it at `path`.
pub async fn create(path: &Path) -> Result<(), SysError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SysError::Io {
            op: "create netns dir",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // The bind mount needs an existing file to mount over.
    File::create(path).map_err(|source| SysError::Io {
        op: "create netns file",
        path: path.to_path_buf(),
        source,
    })?;
    let target = path.to_path_buf();
    let result = spawn_helper(Target::Fresh, path.to_path_buf(), move || {
        block_on_netlink(|handle| async move { super::linux::set_link_up(&handle, "lo").await })?;
        // /proc/thread-self: the namespace of this thread, not of the process' main thread.
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|source| SysError::Os {
            op: format!("bind-mount netns onto {}", target.display()),
            source,
        })
    })
    .await;
    if result.is_err() {
        // Best effort: a half-made file must not look like a namespace later.
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Unmounts and removes a namespace file; already gone is fine.
pub fn delete(path: &Path) -> Result<(), SysError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(source) => {
            return Err(SysError::Os {
                op: format!("unmount netns {}", path.display()),
                source,
            })
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SysError::Io {
            op: "remove netns file",
            path: path.to_path_buf(),
            source,
        }),
    }
}
