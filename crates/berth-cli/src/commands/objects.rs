//! Network and volume commands (ls, create, rm, connect, disconnect, prune).

use berth_client::Client;
use serde_json::{json, Map, Value};

use super::{for_each, out, truncate_id};
use crate::cli::{
    NamesForce, NetConnectArgs, NetCreateArgs, NetDisconnectArgs, NetLsArgs, PruneArgs,
    VolCreateArgs, VolLsArgs, VolPruneArgs,
};
use crate::error::{CliError, CliResult};
use crate::format::humanize::human_size_prec;
use crate::format::Format;

fn kv_map(list: &[String]) -> Map<String, Value> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), json!(v))
        })
        .collect()
}

/// `berth network ls`.
pub async fn network_ls(c: &Client, a: NetLsArgs) -> CliResult {
    let f = super::filters(&a.filter)?;
    let path = if f.as_object().is_some_and(|o| !o.is_empty()) {
        format!(
            "/networks?{}",
            berth_client::query(&[("filters", &f.to_string())])
        )
    } else {
        "/networks".to_string()
    };
    let mut list = c
        .get_json(&path)
        .await?
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let rows: Vec<Value> = list
        .iter()
        .map(|n| {
            let id = n["Id"].as_str().unwrap_or_default();
            let mut labels: Vec<String> = n["Labels"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            labels.sort();
            json!({
                "ID": if a.no_trunc { id.to_string() } else { truncate_id(id) },
                "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
                "IPv6": n["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
                "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(),
                "Labels": labels.join(","),
                "CreatedAt": n["Created"],
            })
        })
        .collect();
    let user = if a.quiet {
        Some("{{.ID}}")
    } else {
        a.format.as_deref()
    };
    let fmt = Format::new(user, "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}")?;
    let header = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED"});
    out(&fmt.render(&header, &rows)?);
    Ok(())
}

/// `berth network create`.
pub async fn network_create(c: &Client, a: NetCreateArgs) -> CliResult {
    let mut configs = Vec::new();
    for (i, subnet) in a.subnet.iter().enumerate() {
        let mut cfg = json!({"Subnet": subnet});
        if let Some(g) = a.gateway.get(i) {
            cfg["Gateway"] = json!(g);
        }
        if let Some(r) = a.ip_range.get(i) {
            cfg["IPRange"] = json!(r);
        }
        configs.push(cfg);
    }
    if a.subnet.is_empty() && !a.gateway.is_empty() {
        return Err(CliError::Msg(
            "every ip-range or gateway must have a corresponding subnet".to_string(),
        ));
    }
    let body = json!({
        "Name": a.name,
        "Driver": a.driver,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "EnableIPv6": a.ipv6,
        "IPAM": {"Driver": "default", "Config": configs, "Options": {}},
        "Options": kv_map(&a.opt),
        "Labels": kv_map(&a.label),
    });
    let r = c.network_create(&body).await?;
    if let Some(w) = r["Warning"].as_str().filter(|w| !w.is_empty()) {
        eprintln!("WARNING: {w}");
    }
    println!("{}", r["Id"].as_str().unwrap_or_default());
    Ok(())
}

/// `berth network rm`.
pub async fn network_rm(c: &Client, a: NamesForce) -> CliResult {
    // docker prints each failure as it happens, then fails with a bare "exit status 1".
    let mut failed = false;
    for n in &a.names {
        match c.network_remove(n).await {
            Ok(()) => println!("{n}"),
            Err(e) if a.force && e.is_not_found() => {}
            Err(e) => {
                eprintln!("{}", CliError::from(e).render());
                failed = true;
            }
        }
    }
    if failed {
        Err(CliError::Msg("exit status 1".to_string()))
    } else {
        Ok(())
    }
}

/// `berth network connect`.
pub async fn network_connect(c: &Client, a: NetConnectArgs) -> CliResult {
    let mut ep = json!({});
    if !a.alias.is_empty() {
        ep["Aliases"] = json!(a.alias);
    }
    if let Some(ip) = &a.ip {
        ep["IPAMConfig"] = json!({"IPv4Address": ip});
    }
    let body = json!({"Container": a.container, "EndpointConfig": ep});
    Ok(c.network_connect(&a.network, &body).await?)
}

/// `berth network disconnect`.
pub async fn network_disconnect(c: &Client, a: NetDisconnectArgs) -> CliResult {
    let body = json!({"Container": a.container, "Force": a.force});
    c.post_json(&format!("/networks/{}/disconnect", a.network), Some(&body))
        .await?;
    Ok(())
}

/// `berth network prune`.
pub async fn network_prune(c: &Client, a: PruneArgs) -> CliResult {
    if !a.force
        && !super::system::confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )
    {
        return Ok(());
    }
    let f = super::filters(&a.filter)?;
    let q = berth_client::query(&[("filters", &f.to_string())]);
    let v = c.post_json(&format!("/networks/prune?{q}"), None).await?;
    if let Some(list) = v["NetworksDeleted"].as_array().filter(|l| !l.is_empty()) {
        let mut o = String::from("Deleted Networks:\n");
        for n in list {
            o.push_str(&format!("{}\n", n.as_str().unwrap_or_default()));
        }
        out(&o);
    }
    Ok(())
}

/// `berth volume ls`.
pub async fn volume_ls(c: &Client, a: VolLsArgs) -> CliResult {
    let f = super::filters(&a.filter)?;
    let path = if f.as_object().is_some_and(|o| !o.is_empty()) {
        format!(
            "/volumes?{}",
            berth_client::query(&[("filters", &f.to_string())])
        )
    } else {
        "/volumes".to_string()
    };
    let v = c.get_json(&path).await?;
    let mut list = v["Volumes"].as_array().cloned().unwrap_or_default();
    list.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let rows: Vec<Value> = list
        .iter()
        .map(|x| {
            let mut labels: Vec<String> = x["Labels"]
                .as_object()
                .map(|o| o.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            labels.sort();
            let size = x["UsageData"]["Size"].as_i64();
            json!({
                "Name": x["Name"], "Driver": x["Driver"], "Scope": x["Scope"],
                "Mountpoint": x["Mountpoint"], "Labels": labels.join(","),
                "Size": match size { Some(s) if s >= 0 => human_size_prec(s as f64, 3), _ => "N/A".to_string() },
            })
        })
        .collect();
    let user = if a.quiet {
        Some("{{.Name}}")
    } else {
        a.format.as_deref()
    };
    let fmt = Format::new(user, "{{.Driver}}\t{{.Name}}")?;
    let header = json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Size": "SIZE"});
    out(&fmt.render(&header, &rows)?);
    Ok(())
}

/// `berth volume create`.
pub async fn volume_create(c: &Client, a: VolCreateArgs) -> CliResult {
    let name = match (&a.name, &a.name_flag) {
        (Some(x), Some(y)) if x != y => {
            return Err(CliError::Msg(format!(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg ({x} and {y})"
            )))
        }
        (Some(x), _) | (None, Some(x)) => x.clone(),
        (None, None) => String::new(),
    };
    let body = json!({
        "Name": name,
        "Driver": a.driver,
        "DriverOpts": kv_map(&a.opt),
        "Labels": kv_map(&a.label),
    });
    let r = c.volume_create(&body).await?;
    println!("{}", r["Name"].as_str().unwrap_or_default());
    Ok(())
}

/// `berth volume rm`.
pub async fn volume_rm(c: &Client, a: NamesForce) -> CliResult {
    let force = a.force;
    for_each(&a.names, |n| async move {
        Ok(c.volume_remove(&n, force).await?)
    })
    .await
}

/// `berth volume prune`.
pub async fn volume_prune(c: &Client, a: VolPruneArgs) -> CliResult {
    if !a.force {
        let what = if a.all {
            "WARNING! This will remove all local volumes not used by at least one container."
        } else {
            "WARNING! This will remove anonymous local volumes not used by at least one container."
        };
        if !super::system::confirm(what) {
            return Ok(());
        }
    }
    let mut f = super::filters(&a.filter)?;
    if a.all {
        f["all"] = json!({"true": true});
    }
    let q = berth_client::query(&[("filters", &f.to_string())]);
    let v = c.post_json(&format!("/volumes/prune?{q}"), None).await?;
    let mut o = String::new();
    if let Some(list) = v["VolumesDeleted"].as_array().filter(|l| !l.is_empty()) {
        o.push_str("Deleted Volumes:\n");
        for n in list {
            o.push_str(&format!("{}\n", n.as_str().unwrap_or_default()));
        }
        o.push('\n');
    }
    o.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_prec(v["SpaceReclaimed"].as_f64().unwrap_or(0.0), 3)
    ));
    out(&o);
    Ok(())
}
