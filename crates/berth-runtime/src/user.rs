//! Resolution of Docker's `--user` strings (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...)
//! against the container image's `/etc/passwd` and `/etc/group`.
//!
//! The rules follow moby's `sys/user.GetExecUser`: a numeric user need not exist, a name must;
//! an explicit group replaces the primary gid and disables supplementary groups; an implicit
//! group takes the supplementary gids from `/etc/group` membership.
//!
//! The rootfs is untrusted: `/etc/passwd` may be a symlink to `/../../host/etc/shadow`. Paths
//! are therefore resolved with [`resolve_in_root`], which follows symlinks itself and clamps
//! every step (absolute targets and `..`) to the rootfs, the way `filepath-securejoin` does.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The numeric identity a container process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
    #[error("{kind} id {value} out of range")]
    Range { kind: &'static str, value: String },
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("too many levels of symbolic links resolving {0} inside the rootfs")]
    SymlinkLoop(PathBuf),
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolve `user` (Docker syntax) inside `rootfs`.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser, UserError> {
    let passwd = read_optional(rootfs, "etc/passwd")?;
    let group = read_optional(rootfs, "etc/group")?;
    resolve_from(user, passwd.as_deref(), group.as_deref())
}

/// `--group-add` entries (gids or names from the rootfs's `/etc/group`) as gids, appended
/// to the process's supplementary groups as dockerd does.
pub fn resolve_groups(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>, UserError> {
    let text = read_optional(rootfs, "etc/group")?;
    groups_from(groups, text.as_deref())
}

fn groups_from(groups: &[String], text: Option<&str>) -> Result<Vec<u32>, UserError> {
    let entries = text.map(parse_group).unwrap_or_default();
    groups
        .iter()
        .map(|g| {
            if let Some(e) = entries.iter().find(|e| &e.name == g) {
                return Ok(e.gid);
            }
            match parse_id("group", g) {
                Some(r) => r,
                None => Err(UserError::NoSuchGroup(g.clone())),
            }
        })
        .collect()
}

fn read_optional(rootfs: &Path, rel: &str) -> Result<Option<String>, UserError> {
    let path = resolve_in_root(rootfs, Path::new(rel))?;
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // A directory or something else unreadable at that name: moby treats it as absent.
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(None),
        Err(source) => Err(UserError::Read { path, source }),
    }
}

/// Resolve `rel` against `root`, following symlinks but never leaving `root`.
///
/// Returns a host path under `root`. The last component may not exist.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Result<PathBuf, UserError> {
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut pending, rel);
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    // `pending` is a stack in reverse order so symlink targets can be spliced in front.
    pending.reverse();
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(UserError::SymlinkLoop(rel.to_path_buf()));
                }
                let target = fs::read_link(&candidate).map_err(|source| UserError::Read {
                    path: candidate.clone(),
                    source,
                })?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut extra = Vec::new();
                push_components(&mut extra, &target);
                for p in extra.into_iter().rev() {
                    pending.push(p);
                }
            }
            _ => resolved.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Ok(out)
}

fn push_components(out: &mut Vec<std::ffi::OsString>, p: &Path) {
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_os_string()),
            Component::ParentDir => out.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            // name:password:uid:gid:gecos:home:shell; moby accepts short lines too.
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0),
                gid: f.get(3).and_then(|s| s.parse().ok()).unwrap_or(0),
                home: f.get(5).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0),
                members: f
                    .get(3)
                    .map(|s| {
                        s.split(',')
                            .filter(|m| !m.is_empty())
                            .map(|m| m.trim().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_id(kind: &'static str, s: &str) -> Option<Result<u32, UserError>> {
    // Mirrors strconv.Atoi + range check: a numeric string is always an id, never a name.
    let n: i64 = s.parse().ok()?;
    if !(0..=i64::from(i32::MAX)).contains(&n) {
        return Some(Err(UserError::Range {
            kind,
            value: s.to_string(),
        }));
    }
    Some(Ok(n as u32))
}

fn resolve_from(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ResolvedUser, UserError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let mut out = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/".to_string(),
    };
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let uid_arg = parse_id("user", user_arg).transpose()?;
    let found = users.iter().find(|u| match (user_arg.is_empty(), uid_arg) {
        (true, _) => u.uid == 0,
        (false, Some(uid)) => u.uid == uid,
        (false, None) => u.name == user_arg,
    });
    let mut matched_name = None;
    match found {
        Some(u) => {
            out.uid = u.uid;
            out.gid = u.gid;
            out.home = u.home.clone();
            matched_name = Some(u.name.clone());
        }
        None if !user_arg.is_empty() => match uid_arg {
            Some(uid) => out.uid = uid,
            None => return Err(UserError::NoSuchUser(user_arg.to_string())),
        },
        None => {}
    }

    if group_arg.is_empty() && matched_name.is_none() {
        return Ok(out);
    }
    let groups = group.map(parse_group).unwrap_or_default();
    if !group_arg.is_empty() {
        let gid_arg = parse_id("group", group_arg).transpose()?;
        let g = groups.iter().find(|g| match gid_arg {
            Some(gid) => g.gid == gid,
            None => g.name == group_arg,
        });
        out.gid = match (g, gid_arg) {
            (Some(g), _) => g.gid,
            (None, Some(gid)) => gid,
            (None, None) => return Err(UserError::NoSuchGroup(group_arg.to_string())),
        };
    } else if let Some(name) = matched_name {
        out.additional_gids = groups
            .iter()
            .filter(|g| g.members.contains(&name))
            .map(|g| g.gid)
            .collect();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_add_takes_ids_and_names() {
        let groups = ["1000".to_string(), "audio".to_string()];
        let got = groups_from(&groups, Some("root:x:0:\naudio:x:29:\n")).expect("resolves");
        assert_eq!(got, vec![1000, 29]);
        let missing = groups_from(&["nope".to_string()], None);
        assert!(matches!(missing, Err(UserError::NoSuchGroup(g)) if g == "nope"));
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        www:x:33:33:www:/var/www:/bin/sh\n\
        42:x:4242:4242::/num:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        daemon:x:1:\n\
        www:x:33:\n\
        audio:x:29:www,daemon\n\
        video:x:44:www\n\
        staff:x:50:\n";

    fn r(spec: &str) -> Result<ResolvedUser, UserError> {
        resolve_from(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn empty_is_root_with_home() {
        let u = r("").expect("root");
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert!(u.additional_gids.is_empty());
    }

    #[test]
    fn name_gets_primary_and_supplementary_groups() {
        let u = r("www").expect("www");
        assert_eq!((u.uid, u.gid), (33, 33));
        assert_eq!(u.additional_gids, vec![29, 44]);
        assert_eq!(u.home, "/var/www");
    }

    #[test]
    fn numeric_uid_need_not_exist() {
        let u = r("1234").expect("numeric");
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1234, 0, "/"));
        let u = r("1234:5678").expect("numeric pair");
        assert_eq!((u.uid, u.gid), (1234, 5678));
    }

    #[test]
    fn numeric_uid_matches_entry() {
        let u = r("33").expect("uid 33");
        assert_eq!((u.uid, u.gid, u.home.as_str()), (33, 33, "/var/www"));
        // A numeric string is always a uid, never the user named "42".
        let u = r("42").expect("uid 42");
        assert_eq!(u.uid, 42);
    }

    #[test]
    fn explicit_group_replaces_gid_and_drops_supplementary() {
        let u = r("www:staff").expect("name:group");
        assert_eq!((u.uid, u.gid), (33, 50));
        assert!(u.additional_gids.is_empty());
        let u = r("www:777").expect("name:gid");
        assert_eq!(u.gid, 777);
        let u = r("0:audio").expect("uid:group");
        assert_eq!((u.uid, u.gid), (0, 29));
    }

    #[test]
    fn unknown_names_error_like_docker() {
        let e = r("nobody").expect_err("missing");
        assert_eq!(
            e.to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        let e = r("www:nogroup").expect_err("missing group");
        assert_eq!(
            e.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        let e = resolve_from("x", None, None).expect_err("no passwd");
        assert!(e.to_string().contains("unable to find user x"));
    }

    #[test]
    fn out_of_range_ids_rejected() {
        assert!(matches!(r("-1"), Err(UserError::Range { .. })));
        assert!(matches!(r("0:99999999999"), Err(UserError::Range { .. })));
    }

    #[test]
    fn symlinks_are_clamped_to_rootfs() {
        let host = tempfile::tempdir().expect("tempdir");
        let outside = host.path().join("outside");
        fs::create_dir_all(outside.join("etc")).expect("mkdir");
        fs::write(outside.join("etc/passwd"), "evil:x:666:666::/:/bin/sh\n").expect("write");
        let root = host.path().join("root");
        fs::create_dir_all(root.join("etc")).expect("mkdir");
        fs::create_dir_all(root.join("real")).expect("mkdir");
        fs::write(root.join("real/passwd"), "app:x:1000:1000::/app:/bin/sh\n").expect("write");
        // Absolute target: must be resolved inside root, not on the host.
        std::os::unix::fs::symlink("/real/passwd", root.join("etc/passwd")).expect("symlink");
        let u = resolve_user(&root, "app").expect("app via symlink");
        assert_eq!(u.uid, 1000);
        // Escaping with .. must stop at the root.
        fs::remove_file(root.join("etc/passwd")).expect("rm");
        std::os::unix::fs::symlink("../../../outside/etc/passwd", root.join("etc/passwd"))
            .expect("symlink");
        assert!(resolve_user(&root, "evil").is_err());
        let p = resolve_in_root(&root, Path::new("etc/passwd")).expect("resolve");
        assert_eq!(p, root.join("outside/etc/passwd"));
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(root.path().join("etc")).expect("mkdir");
        std::os::unix::fs::symlink("passwd", root.path().join("etc/passwd")).expect("symlink");
        assert!(matches!(
            resolve_user(root.path(), "x"),
            Err(UserError::SymlinkLoop(_))
        ));
    }
}
