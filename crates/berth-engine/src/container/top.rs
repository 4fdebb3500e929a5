//! `top`: the container's processes as the host's `ps` shows them.
//!
//! Like dockerd, berth runs the host's `ps` with the caller's arguments and keeps only the
//! rows whose PID column names a process in the container's cgroup. The pid list comes from
//! `cgroup.procs` (host pids, which is what `ps` prints), so it works the same for any pid
//! namespace setup. `ps` is first asked for just those pids (`-q pid,...`) and retried
//! without when the given options refuse `-q` (as moby does for `f` and friends).

use super::state::Status;
use crate::{Engine, Error, Result};
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;

/// Docker's `ContainerTopOKBody`.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct TopBody {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("ps_args contains invalid pid filter -q")]
    PidFilter,
    #[error("Couldn't find PID field in ps output")]
    NoPidColumn,
    #[error("unexpected pid {value:?} in ps output")]
    BadPid { value: String },
}

impl From<TopError> for Error {
    fn from(e: TopError) -> Error {
        Error::InvalidArgument(e.to_string())
    }
}

impl Engine {
    pub async fn top_container(&self, name: &str, ps_args: Option<&str>) -> Result<TopBody> {
        let h = self.lookup(name)?;
        let c = h.snapshot();
        match c.state.status() {
            Status::Running | Status::Paused => {}
            Status::Restarting => {
                return Err(Error::Conflict(format!(
                    "Container {} is restarting, wait until the container is running",
                    c.id
                )))
            }
            _ => {
                return Err(Error::Conflict(format!(
                    "Container {} is not running",
                    c.id
                )))
            }
        }
        let args = ps_args
            .filter(|a| !a.is_empty())
            .unwrap_or("-ef")
            .to_string();
        validate_ps_args(&args)?;
        let pids = container_pids(&c.cgroups_path);
        if pids.is_empty() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let argv: Vec<String> = args
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let pid_arg = format!(
            "-q{}",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut with_q = argv.clone();
        with_q.push(pid_arg);
        let out = tokio::process::Command::new("ps")
            .args(&with_q)
            .output()
            .await
            .map_err(|e| Error::io("run ps", e))?;
        let out = if out.status.success() {
            out
        } else {
            let retry = tokio::process::Command::new("ps")
                .args(&argv)
                .output()
                .await
                .map_err(|e| Error::io("run ps", e))?;
            if !retry.status.success() {
                return Err(Error::Internal(format!(
                    "ps: {}",
                    String::from_utf8_lossy(&retry.stderr).trim()
                )));
            }
            retry
        };
        let set: HashSet<u32> = pids.into_iter().collect();
        Ok(parse_ps_output(
            &String::from_utf8_lossy(&out.stdout),
            &set,
        )?)
    }
}

/// moby refuses a `-q` of the caller's own: it would defeat the pid filter.
fn validate_ps_args(args: &str) -> std::result::Result<(), TopError> {
    for a in args.split(' ') {
        if a.starts_with('-') && !a.starts_with("--") && a.contains('q') {
            return Err(TopError::PidFilter);
        }
        if a == "--pid" || a.starts_with("--pid=") || a == "--quick-pid" {
            return Err(TopError::PidFilter);
        }
    }
    Ok(())
}

/// Host pids in the container's cgroup: the v1 `pids`/`memory`/`cpu` hierarchy when there
/// is one, else the unified tree.
pub fn container_pids(cgroups_path: &str) -> Vec<u32> {
    let rel = cgroups_path.trim_start_matches('/');
    let mut candidates: Vec<PathBuf> = ["pids", "memory", "cpu", "cpuacct", "freezer"]
        .iter()
        .filter_map(|c| berth_runtime::cgroups::v1_mount(c))
        .map(|m| m.join(rel))
        .collect();
    let fsys = berth_runtime::cgroups::CgroupFs::host();
    if let Some(v2) = fsys.v2 {
        candidates.push(v2.join(rel));
    }
    for dir in candidates {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            let mut pids: Vec<u32> = text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if !pids.is_empty() {
                pids.sort_unstable();
                return pids;
            }
        }
    }
    Vec::new()
}

/// Splits `ps` output into titles and rows, keeping the rows of `pids`. The last column
/// (the command) may contain spaces: a row gets exactly as many fields as there are titles.
pub fn parse_ps_output(out: &str, pids: &HashSet<u32>) -> std::result::Result<TopBody, TopError> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or(TopError::NoPidColumn)?;
    let mut processes = Vec::new();
    for line in lines {
        let fields = split_n(line, titles.len());
        let Some(p) = fields.get(pid_col) else {
            continue;
        };
        let pid: u32 = p
            .parse()
            .map_err(|_| TopError::BadPid { value: p.clone() })?;
        if pids.contains(&pid) {
            processes.push(fields);
        }
    }
    Ok(TopBody { titles, processes })
}

/// Whitespace fields, the last one taking the rest of the line (Go's strings.Fields + join).
fn split_n(line: &str, n: usize) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if n == 0 || words.len() <= n {
        return words.into_iter().map(String::from).collect();
    }
    let mut out: Vec<String> = words[..n - 1].iter().map(|s| s.to_string()).collect();
    out.push(words[n - 1..].join(" "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init splash
root        4242    4200  0 10:01 ?        00:00:00 sleep 1000
root        4243    4242  0 10:01 pts/0    00:00:00 sh -c echo a  b
";

    #[test]
    fn keeps_only_container_pids() {
        let pids: HashSet<u32> = [4242, 4243].into_iter().collect();
        let b = parse_ps_output(PS, &pids).expect("parses");
        assert_eq!(b.titles.len(), 8);
        assert_eq!(b.processes.len(), 2);
        assert_eq!(b.processes[0][1], "4242");
        assert_eq!(b.processes[0][7], "sleep 1000");
        assert_eq!(b.processes[1][7], "sh -c echo a b");
    }

    #[test]
    fn pid_column_is_required() {
        let err = parse_ps_output("USER CMD\nroot x\n", &HashSet::new()).expect_err("no pid");
        assert_eq!(err.to_string(), "Couldn't find PID field in ps output");
    }

    #[test]
    fn rejects_own_pid_filter() {
        assert!(validate_ps_args("-ef").is_ok());
        assert!(validate_ps_args("aux").is_ok());
        assert!(validate_ps_args("-o pid,comm").is_ok());
        assert!(validate_ps_args("-q 1").is_err());
        assert!(validate_ps_args("-eq").is_err());
    }
}
