//! `stats`: resource usage in Docker's `StatsResponse` shape, from the container's cgroup
//! (v1 or v2, read by berth-runtime) and its init's `/proc/<pid>/net/dev`.
//!
//! Docker's CPU percentage is computed by the client from two samples (`cpu_stats` and
//! `precpu_stats`), so every message carries the previous sample. A streamed response
//! sends one message per second; `stream=0` takes a first sample, waits a short moment and
//! answers with the second, so `docker stats --no-stream` has a delta to work with;
//! `one-shot=1` answers at once with an empty `precpu_stats`, as dockerd does.
//! When the cgroup sets no memory limit Docker reports the host's memory as the limit.
//! CFS throttling (`throttling_data`) and block I/O per device (`MAJ:MIN` and operation,
//! `io_service_bytes_recursive` / `io_serviced_recursive`) come from the cgroup as is.

use super::state::Status;
use super::Container;
use crate::{util, Engine, Result};
use berth_runtime::cgroups::CgroupStats;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long `stream=0` waits between its two samples.
const ONE_SHOT_GAP: Duration = Duration::from_millis(500);
/// The streaming interval (dockerd's collector ticks once a second).
const INTERVAL: Duration = Duration::from_secs(1);

/// One reading of a container.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub read: String,
    pub cg: CgroupStats,
    pub networks: BTreeMap<String, NetDev>,
}

/// One interface's counters from /proc/<pid>/net/dev.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

impl Engine {
    /// The stats messages for `name`: one when `!stream`, else one per second until the
    /// container stops or the receiver is dropped.
    pub async fn container_stats(
        &self,
        name: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<mpsc::Receiver<Value>> {
        let h = self.lookup(name)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let c = h.snapshot();
            if !c.state.status().is_active() {
                // dockerd answers a stopped container with one empty message.
                let _ = tx.send(stats_json(&c, None, None, 0)).await;
                return;
            }
            let host_mem = host_memory();
            let mut pre: Option<Sample> = None;
            if !stream && !one_shot {
                pre = sample(&c).await;
                tokio::time::sleep(ONE_SHOT_GAP).await;
            }
            loop {
                let c = h.snapshot();
                let cur =
                    if c.state.status() == Status::Running || c.state.status() == Status::Paused {
                        sample(&c).await
                    } else {
                        None
                    };
                let msg = stats_json(&c, cur.as_ref(), pre.as_ref(), host_mem);
                if tx.send(msg).await.is_err() || !stream || cur.is_none() {
                    return;
                }
                pre = cur;
                tokio::time::sleep(INTERVAL).await;
            }
        });
        Ok(rx)
    }
}

async fn sample(c: &Container) -> Option<Sample> {
    let cg_path = c.cgroups_path.clone();
    let pid = c.state.pid;
    tokio::task::spawn_blocking(move || {
        let cg = berth_runtime::cgroups::stats(&cg_path).ok()?;
        let networks = if pid > 0 {
            std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
                .map(|t| parse_net_dev(&t))
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        Some(Sample {
            read: util::now_rfc3339(),
            cg,
            networks,
        })
    })
    .await
    .ok()
    .flatten()
}

/// MemTotal of the host in bytes.
pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Parses /proc/net/dev, leaving out the loopback (Docker does not report it).
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetDev> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetDev {
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            },
        );
    }
    out
}

fn cpu_json(s: Option<&Sample>) -> Value {
    match s {
        None => json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        }),
        Some(s) => {
            let mut usage = json!({
                "total_usage": s.cg.cpu_total,
                "usage_in_kernelmode": s.cg.cpu_kernel,
                "usage_in_usermode": s.cg.cpu_user,
            });
            if !s.cg.cpu_percpu.is_empty() {
                usage["percpu_usage"] = json!(s.cg.cpu_percpu);
            }
            json!({
                "cpu_usage": usage,
                "system_cpu_usage": s.cg.system_cpu,
                "online_cpus": s.cg.online_cpus,
                "throttling_data": {
                    "periods": s.cg.cpu_periods,
                    "throttled_periods": s.cg.cpu_throttled_periods,
                    "throttled_time": s.cg.cpu_throttled_time,
                }
            })
        }
    }
}

/// Docker's `StatsResponse` for `c` from the current and previous samples.
pub fn stats_json(
    c: &Container,
    cur: Option<&Sample>,
    pre: Option<&Sample>,
    host_mem: u64,
) -> Value {
    let zero_time = util::ZERO_TIME;
    let mut v = json!({
        "name": c.name,
        "id": c.id,
        "read": cur.map(|s| s.read.as_str()).unwrap_or(zero_time),
        "preread": pre.map(|s| s.read.as_str()).unwrap_or(zero_time),
        "pids_stats": {},
        "blkio_stats": {
            "io_service_bytes_recursive": null,
            "io_serviced_recursive": null,
            "io_queue_recursive": null,
            "io_service_time_recursive": null,
            "io_wait_time_recursive": null,
            "io_merged_recursive": null,
            "io_time_recursive": null,
            "sectors_recursive": null
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(cur),
        "precpu_stats": cpu_json(pre),
        "memory_stats": {},
    });
    let Some(s) = cur else {
        return v;
    };
    let cg = &s.cg;
    let mut pids = json!({"current": cg.pids_current});
    if let Some(l) = cg.pids_limit {
        pids["limit"] = json!(l);
    }
    v["pids_stats"] = pids;
    // Per device, as dockerd reports them; a cgroup that has done no I/O lists nothing
    // (dockerd then sends null, which the CLI shows as 0B / 0B).
    if !cg.blkio_service_bytes.is_empty() {
        v["blkio_stats"]["io_service_bytes_recursive"] = json!(cg.blkio_service_bytes);
    }
    if !cg.blkio_serviced.is_empty() {
        v["blkio_stats"]["io_serviced_recursive"] = json!(cg.blkio_serviced);
    }
    // A limit above the host's memory means "unlimited" (v1 reports a huge number).
    let limit = if cg.memory_limit == 0 || (host_mem > 0 && cg.memory_limit > host_mem) {
        host_mem
    } else {
        cg.memory_limit
    };
    let mut mem = json!({
        "usage": cg.memory_usage,
        "limit": limit,
        "stats": cg.memory_stats,
    });
    if cg.memory_max_usage > 0 {
        mem["max_usage"] = json!(cg.memory_max_usage);
    }
    v["memory_stats"] = mem;
    if !s.networks.is_empty() {
        let mut nets = Map::new();
        for (name, n) in &s.networks {
            nets.insert(
                name.clone(),
                json!({
                    "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                    "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                    "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                    "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                }),
            );
        }
        v["networks"] = Value::Object(nets);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1500      10    1    2    0     0          0         0     3000      20    3    4    0     0       0          0
";

    #[test]
    fn net_dev_skips_loopback() {
        let n = parse_net_dev(NET_DEV);
        assert_eq!(n.len(), 1);
        let e = &n["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (1500, 10, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (3000, 20, 3, 4)
        );
    }

    fn container() -> Container {
        serde_json::from_value(json!({
            "id": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "name": "/web", "created": "", "path": "sh", "args": [],
            "config": {}, "host_config": {}, "image": "sha256:x",
            "state": {"pid": 0, "exit_code": 0, "error": "", "oom_killed": false},
            "restart_count": 0, "manually_stopped": false,
            "log_path": "", "hostname_path": "", "hosts_path": "", "resolv_conf_path": "",
            "cgroups_path": "/berth/x"
        }))
        .expect("container record")
    }

    #[test]
    fn unlimited_memory_reports_host_memory() {
        let c = container();
        let s = Sample {
            read: "2024-01-01T00:00:01Z".into(),
            cg: CgroupStats {
                cpu_total: 2_000,
                cpu_percpu: vec![1_000, 1_000],
                system_cpu: 10_000,
                online_cpus: 2,
                memory_usage: 4096,
                memory_limit: 9_223_372_036_854_771_712,
                ..Default::default()
            },
            networks: BTreeMap::new(),
        };
        let v = stats_json(&c, Some(&s), None, 1 << 30);
        assert_eq!(v["memory_stats"]["limit"], json!(1u64 << 30));
        assert_eq!(v["name"], "/web");
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["percpu_usage"],
            json!([1000, 1000])
        );
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        let mut limited = s.clone();
        limited.cg.memory_limit = 1 << 20;
        let v = stats_json(&c, Some(&limited), Some(&s), 1 << 30);
        assert_eq!(v["memory_stats"]["limit"], json!(1u64 << 20));
        assert_eq!(v["preread"], "2024-01-01T00:00:01Z");
        assert_eq!(v["blkio_stats"]["io_service_bytes_recursive"], Value::Null);
    }

    #[test]
    fn throttling_and_per_device_blkio() {
        let mut s = Sample::default();
        s.cg.cpu_periods = 10;
        s.cg.cpu_throttled_periods = 4;
        s.cg.cpu_throttled_time = 900;
        s.cg.blkio_service_bytes = vec![berth_runtime::cgroups::BlkioEntry {
            major: 253,
            minor: 1,
            op: "Read".into(),
            value: 4096,
        }];
        let v = stats_json(&container(), Some(&s), None, 1 << 30);
        assert_eq!(
            v["cpu_stats"]["throttling_data"],
            json!({"periods": 10, "throttled_periods": 4, "throttled_time": 900})
        );
        assert_eq!(
            v["blkio_stats"]["io_service_bytes_recursive"],
            json!([{"major": 253, "minor": 1, "op": "Read", "value": 4096}])
        );
    }

    #[test]
    fn stopped_container_has_empty_stats() {
        let v = stats_json(&container(), None, None, 0);
        assert_eq!(v["read"], util::ZERO_TIME);
        assert_eq!(v["memory_stats"], json!({}));
        assert!(v.get("networks").is_none());
    }
}
