//! Running code inside another network namespace without moving the daemon's threads.
//!
//! `setns(CLONE_NEWNET)` and `unshare(CLONE_NEWNET)` change the namespace of the calling
//! thread only. Doing that on a tokio worker would leave a pooled thread in a container's
//! namespace and make every later task on it act there, so each operation gets a fresh,
//! short-lived OS thread that switches namespace, does its work and exits. Sockets it opens
//! stay bound to that namespace and can then be used from any thread (that is how the
//! embedded DNS listens on 127.0.0.11 inside each container). Netlink work in the helper
//! runs on a tiny current-thread runtime owned by the helper.
//!
//! **A pool of namespaces made ahead.** `unshare(CLONE_NEWNET)` plus `lo` up costs 5 to
//! 10 ms of kernel work, on the path of every container start on a bridge. [`NetnsPool`]
//! keeps a few namespaces ready, made by a background thread, and [`create`] takes one and
//! only bind-mounts it (tens of microseconds). The pool holds them as open file
//! descriptors only, never as files: when the daemon exits or crashes the kernel closes
//! them and frees the namespaces, so there is nothing to clean up or reconcile.
//!
//! **With a veth pair each.** The real [`super::linux::LinuxNetSys`] pool also makes a veth
//! pair per namespace: `eth0` inside, `veth<hex>` in the daemon's namespace, both down and
//! on no bridge. The first endpoint of the
//! namespace takes the pair: the host end is renamed to the endpoint's name, put on its
//! bridge and set up; the inside end gets the endpoint's MAC (and name, if not `eth0`)
//! while still down, then its address. Creating the pair (two device
//! registrations) is then off the start's path. A pair goes with its namespace: deleting
//! one end deletes the other, and the kernel deletes a namespace's veths when it frees the
//! namespace, so a crash leaks nothing either. The filler runs at nice 19, so it yields to
//! the start that took the namespace. `release_pool` (network shutdown) deletes what is
//! left and stops the filler.

use std::fs::File;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
        .enable_time()
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

/// A namespace made ahead, and the host end of the veth pair made with it, if any: the
/// pair is down, its namespace end named [`POOLED_PEER`], its host end `veth<hex>`.
pub struct Pooled {
    pub ns: OwnedFd,
    pub veth: Option<PooledVeth>,
}

/// The veth pair of a pooled namespace: the name of its host end, and the index of its
/// namespace end (in the namespace).
#[derive(Debug)]
pub struct PooledVeth {
    pub host_end: String,
    pub peer_index: u32,
}

/// The name of a pooled pair's end inside the namespace: a container's first interface's,
/// so the common case needs no rename (a rename was a third of configuring the peer).
pub const POOLED_PEER: &str = "eth0";

/// Namespaces with `lo` up, made ahead by a background thread (see the module docs).
pub struct NetnsPool {
    ready: Mutex<Vec<Pooled>>,
    size: usize,
    filling: AtomicBool,
    closed: AtomicBool,
    /// With veth pairs: the namespace their host ends go to, the one the pool was made in.
    home: Option<File>,
}

impl NetnsPool {
    /// A pool that keeps `size` namespaces ready; it starts filling at once.
    pub fn new(size: usize) -> Arc<NetnsPool> {
        Self::build(size, None)
    }

    /// A pool whose namespaces also hold a veth pair each (see [`Pooled`]), with host ends
    /// in the calling thread's namespace; without veths if that cannot be opened.
    pub fn with_veths(size: usize) -> Arc<NetnsPool> {
        // /proc/thread-self: the namespace of this thread, not of the process' main thread.
        Self::build(size, File::open("/proc/thread-self/ns/net").ok())
    }

    fn build(size: usize, home: Option<File>) -> Arc<NetnsPool> {
        let pool = Arc::new(NetnsPool {
            ready: Mutex::new(Vec::new()),
            size,
            filling: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            home,
        });
        pool.refill();
        pool
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Pooled>> {
        self.ready.lock().expect("netns pool lock poisoned")
    }

    /// Namespaces ready now.
    pub fn len(&self) -> usize {
        self.ready().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the pool for good: the namespaces made ahead are returned (their veth pairs
    /// are the caller's to delete) and no more are made.
    pub fn close(&self) -> Vec<Pooled> {
        self.closed.store(true, Ordering::Release);
        // The filler may be making one more: wait for it (a namespace takes milliseconds).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.filling.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::mem::take(&mut *self.ready())
    }

    /// Takes a ready namespace, if any, and starts making its replacement.
    pub fn take(self: &Arc<Self>) -> Option<Pooled> {
        let fd = self.ready().pop();
        self.refill();
        fd
    }

    /// Starts the filler thread unless it runs already or the pool is full.
    pub fn refill(self: &Arc<Self>) {
        if self.size == 0
            || self.closed.load(Ordering::Acquire)
            || self.len() >= self.size
            || self.filling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name("berth-netns-pool".into())
            .spawn(move || loop {
                // Lowest priority: the namespace (milliseconds of kernel work) is for a later
                // start and must not slow the one that just took the previous namespace.
                // SAFETY: setpriority on this thread's id; no memory is passed.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
                }
                while pool.len() < pool.size && !pool.closed.load(Ordering::Acquire) {
                    match make_namespace(pool.home.as_ref().map(|f| f.as_raw_fd())) {
                        Ok(p) => pool.ready().push(p),
                        Err(e) => {
                            // Not fatal: create() makes namespaces on demand meanwhile.
                            tracing::warn!(error = %e, "pre-creating a network namespace failed");
                            break;
                        }
                    }
                }
                pool.filling.store(false, Ordering::Release);
                // A take between the last check and the store found `filling` set and
                // left the refill to us: look again.
                if pool.len() >= pool.size || pool.filling.swap(true, Ordering::AcqRel) {
                    return;
                }
            });
        if let Err(e) = spawned {
            self.filling.store(false, Ordering::Release);
            tracing::warn!(error = %e, "starting the netns pool thread failed");
        }
    }
}

/// On the calling thread, which it leaves inside: a new namespace with `lo` up, and with
/// `home` (a namespace fd) a veth pair between the two. Only for a thread of its own that
/// exits afterwards.
fn make_namespace(home: Option<std::os::fd::RawFd>) -> Result<Pooled, SysError> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|source| SysError::Os {
        op: "unshare(CLONE_NEWNET)".into(),
        source,
    })?;
    let host_end = home.map(|_| super::linux::pooled_host_name());
    let name = host_end.clone();
    let peer_index = block_on_netlink(move |handle| async move {
        super::linux::set_link_up(&handle, "lo").await?;
        match (name, home) {
            (Some(name), Some(fd)) => {
                super::linux::create_pooled_pair(&handle, POOLED_PEER, &name, fd).await
            }
            _ => Ok(0),
        }
    })?;
    let veth = host_end.map(|host_end| PooledVeth {
        host_end,
        peer_index,
    });
    // /proc/thread-self: the namespace of this thread, not of the process' main thread.
    let file = File::open("/proc/thread-self/ns/net").map_err(|source| SysError::Io {
        op: "open",
        path: PathBuf::from("/proc/thread-self/ns/net"),
        source,
    })?;
    Ok(Pooled {
        ns: OwnedFd::from(file),
        veth,
    })
}

/// Creates a namespace, sets `lo` up in it and bind-mounts it at `path`; takes it from
/// `pool` when one is ready there. Returns the pooled veth pair that came with it, if any.
pub async fn create(
    path: &Path,
    pool: Option<&Arc<NetnsPool>>,
) -> Result<Option<PooledVeth>, SysError> {
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
    if let Some(Pooled { ns: fd, veth }) = pool.and_then(|p| p.take()) {
        let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let result = mount(
            Some(&source),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|source| SysError::Os {
            op: format!("bind-mount netns onto {}", path.display()),
            source,
        });
        // The mount holds the namespace now; our fd goes.
        drop(fd);
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        return result.map(|()| veth);
    }
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
    result.map(|()| None)
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
