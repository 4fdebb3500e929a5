//! Git build contexts: `POST /build?remote=<git URL>` (and `berth build <git URL>`), as
//! dockerd's classic builder serves them.
//!
//! Which strings are git URLs follows docker's `urlutil.IsGitURL`: `git://`, `git@`,
//! `github.com/` prefixes, or an http(s) URL whose path ends in `.git`. The fragment is
//! `#<ref>:<subdir>`: the ref (branch, tag or commit) to check out, the directory inside the
//! repository to use as the context. The repository is fetched with the system `git`, the
//! way dockerd's `gitutils.Clone` does it (`init`, `fetch --depth 1 origin <ref>`, falling
//! back to a full fetch when the server refuses a shallow fetch of that ref, `checkout
//! FETCH_HEAD`, submodules), never prompting for credentials. The checkout is then read
//! like any context by [`ContextIndex::from_dir`].

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::context::{ContextError, SourceTree};
use crate::index::ContextIndex;

/// A git context that could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("unable to prepare context: {0}")]
    Git(String),
    #[error("unable to prepare context: subdirectory {0:?} is not inside the repository")]
    Subdir(String),
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// docker's `IsGitURL`.
pub fn is_git_url(s: &str) -> bool {
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("github.com/") {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return false;
    }
    let path = s.split('#').next().unwrap_or(s);
    let path = path.split('?').next().unwrap_or(path);
    path.ends_with(".git")
}

/// A git context reference: the URL to fetch, the ref and the subdirectory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    pub url: String,
    pub reference: Option<String>,
    pub subdir: Option<String>,
}

/// Splits `url#ref:subdir`; `github.com/x/y` becomes `https://github.com/x/y` as in docker.
pub fn parse_git_url(s: &str) -> GitRef {
    let (url, frag) = match s.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (s, None),
    };
    let url = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_string()
    };
    let (reference, subdir) = match frag {
        None => (None, None),
        Some(f) => {
            let (r, d) = match f.split_once(':') {
                Some((r, d)) => (r, Some(d)),
                None => (f, None),
            };
            (
                Some(r).filter(|r| !r.is_empty()).map(str::to_string),
                d.filter(|d| !d.is_empty()).map(str::to_string),
            )
        }
    };
    GitRef {
        url,
        reference,
        subdir,
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<(), RemoteError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| RemoteError::Git(format!("run git: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(RemoteError::Git(format!(
        "git {} failed: {}",
        args.first().copied().unwrap_or(""),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Fetches the repository into `dest` (an empty directory) and checks out the ref; the
/// context directory (the checkout or its subdirectory) is returned.
pub fn clone(r: &GitRef, dest: &Path) -> Result<PathBuf, RemoteError> {
    git(dest, &["init", "-q"])?;
    git(dest, &["remote", "add", "origin", &r.url])?;
    let reference = r.reference.as_deref().unwrap_or("HEAD");
    if git(dest, &["fetch", "-q", "--depth", "1", "origin", reference]).is_err() {
        // Some servers refuse a shallow fetch of an arbitrary commit: fetch everything,
        // then the ref is looked up locally.
        git(dest, &["fetch", "-q", "--tags", "origin"])?;
        let remote_branch = format!("origin/{reference}");
        let target = if git(dest, &["rev-parse", "-q", "--verify", &remote_branch]).is_ok() {
            remote_branch
        } else {
            reference.to_string()
        };
        git(dest, &["checkout", "-q", &target])?;
    } else {
        git(dest, &["checkout", "-q", "FETCH_HEAD"])?;
    }
    git(
        dest,
        &[
            "submodule",
            "update",
            "-q",
            "--init",
            "--recursive",
            "--depth",
            "1",
        ],
    )?;
    let Some(sub) = r.subdir.as_deref() else {
        return Ok(dest.to_path_buf());
    };
    // The subdirectory must stay inside the checkout, symlinks included.
    if Path::new(sub)
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(RemoteError::Subdir(sub.to_string()));
    }
    let tree = crate::context::DiskTree::new(dest);
    let resolved = tree.resolve(sub)?;
    if !resolved.is_dir() {
        return Err(RemoteError::Git(format!(
            "subdirectory {sub:?} not found in the repository"
        )));
    }
    Ok(resolved)
}

/// Clones `url` (with its `#ref:subdir`) under `work` and reads the context from it.
pub fn git_context(url: &str, work: &Path) -> Result<ContextIndex, RemoteError> {
    let r = parse_git_url(url);
    let dest = work.join("git");
    std::fs::create_dir_all(&dest).map_err(|e| RemoteError::Git(format!("create dir: {e}")))?;
    let dir = clone(&r, &dest)?;
    Ok(ContextIndex::from_dir(&dir, work)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_as_docker_sees_them() {
        for u in [
            "git://127.0.0.1/repo",
            "git@github.com:a/b.git",
            "github.com/a/b",
            "https://example.com/a/b.git",
            "http://example.com/a/b.git#main:sub",
        ] {
            assert!(is_git_url(u), "{u}");
        }
        for u in [
            "https://example.com/ctx.tar.gz",
            "/tmp/x",
            ".",
            "http://x/a.git.tar",
        ] {
            assert!(!is_git_url(u), "{u}");
        }
        assert_eq!(
            parse_git_url("git://h/r.git#v1:docker/app"),
            GitRef {
                url: "git://h/r.git".into(),
                reference: Some("v1".into()),
                subdir: Some("docker/app".into()),
            }
        );
        assert_eq!(
            parse_git_url("github.com/a/b#:sub"),
            GitRef {
                url: "https://github.com/a/b".into(),
                reference: None,
                subdir: Some("sub".into()),
            }
        );
    }

    fn sh(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .expect("git");
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }

    #[test]
    fn clones_a_ref_and_a_subdirectory() {
        if Command::new("git").arg("--version").output().is_err() {
            eprintln!("no git: skipped");
            return;
        }
        let repo = tempfile::tempdir().expect("tmp");
        let r = repo.path();
        sh(r, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(r.join("app")).expect("mkdir");
        std::fs::write(r.join("app/Dockerfile"), "FROM scratch\n").expect("write");
        std::fs::write(r.join("app/v"), "one").expect("write");
        sh(r, &["add", "."]);
        sh(r, &["commit", "-q", "-m", "one"]);
        sh(r, &["tag", "v1"]);
        std::fs::write(r.join("app/v"), "two").expect("write");
        sh(r, &["commit", "-q", "-am", "two"]);
        // Served over git:// on loopback, as a remote repository would be (file:// is a
        // host path, which the fetch refuses on purpose).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let base = r.parent().expect("parent");
        // git-daemon itself, not `git daemon`: the wrapper would leave it running when
        // killed.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        let mut daemon = Daemon(
            Command::new(Path::new(&exec_path).join("git-daemon"))
                .args([
                    "--export-all",
                    "--reuseaddr",
                    "--listen=127.0.0.1",
                    &format!("--port={port}"),
                    &format!("--base-path={}", base.display()),
                    &base.display().to_string(),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("git daemon"),
        );
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let name = r.file_name().expect("name").to_string_lossy().into_owned();
        let url = format!("git://127.0.0.1:{port}/{name}");
        assert!(is_git_url(&url));
        let work = tempfile::tempdir().expect("tmp");
        let idx = git_context(&format!("{url}#v1:app"), work.path()).expect("clone v1");
        let mut v = String::new();
        std::io::Read::read_to_string(
            &mut idx.open(&idx.resolve("v").expect("resolve")).expect("open"),
            &mut v,
        )
        .expect("read");
        assert_eq!(v, "one");
        let work = tempfile::tempdir().expect("tmp");
        let idx = git_context(&format!("{url}#main:app"), work.path()).expect("clone main");
        let mut v = String::new();
        std::io::Read::read_to_string(
            &mut idx.open(&idx.resolve("v").expect("resolve")).expect("open"),
            &mut v,
        )
        .expect("read");
        assert_eq!(v, "two");
        let work = tempfile::tempdir().expect("tmp");
        assert!(matches!(
            git_context(&format!("{url}#main:../x"), work.path()),
            Err(RemoteError::Subdir(_))
        ));
        let work = tempfile::tempdir().expect("tmp");
        assert!(git_context(&format!("{url}#nope"), work.path()).is_err());
        // file:// is refused even when asked for directly.
        let work = tempfile::tempdir().expect("tmp");
        assert!(git_context(&format!("file://{}", r.display()), work.path()).is_err());
        let _ = daemon.0.kill();
        let _ = daemon.0.wait();
    }

    /// Kills the test's git daemon (by its own pid) even when an assertion fails.
    struct Daemon(std::process::Child);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
