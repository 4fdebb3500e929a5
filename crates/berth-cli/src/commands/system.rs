//! System-wide commands: version, info, system df/prune/events, container prune, login.

use std::io::{BufRead, Write};

use berth_client::Client;
use serde_json::{json, Value};

use super::out;
use crate::cli::{DfArgs, EventsArgs, FormatOnly, LoginArgs, PruneArgs, SystemPruneArgs};
use crate::error::{CliError, CliResult};
use crate::format::humanize::human_size_prec;
use crate::format::template::Template;

/// Ask `Are you sure you want to continue? [y/N]` on stderr; true on `y`/`yes`.
pub fn confirm(warning: &str) -> bool {
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The client half of `version` as an object (also what `{{.Client}}` sees).
fn client_version(api: &str) -> Value {
    json!({
        "Platform": {"Name": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": api,
        "DefaultAPIVersion": berth_client::MAX_API_VERSION,
        "GitCommit": "unknown",
        "GoVersion": "rust",
        "Os": std::env::consts::OS,
        "Arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "BuildTime": "unknown",
        "Context": "default",
    })
}

/// `berth version`.
pub async fn version(host: Option<&str>, f: &FormatOnly) -> CliResult {
    // Ping explicitly: the client part shows the negotiated version, and a daemon that
    // is not there must fail here, before the server part.
    let conn = match super::connect(host).await {
        Ok(mut c) => c.negotiate().await.map(|()| c).map_err(CliError::from),
        Err(e) => Err(e),
    };
    let api = conn
        .as_ref()
        .map(|c| c.api_version().to_string())
        .unwrap_or_else(|_| berth_client::MAX_API_VERSION.to_string());
    let client = client_version(&api);
    let server = match &conn {
        Ok(c) => Some(c.version().await),
        Err(_) => None,
    };
    if let Some(tf) = &f.format {
        let mut data = json!({"Client": client});
        if let Some(Ok(sv)) = &server {
            data["Server"] = sv.clone();
        }
        let t = Template::parse(tf)?;
        out(&format!("{}\n", t.execute(&data)?));
        return match (conn, server) {
            (Err(e), _) => Err(e),
            (_, Some(Err(e))) => Err(e.into()),
            _ => Ok(()),
        };
    }
    let mut o = String::new();
    o.push_str("Client:\n");
    let rows = [
        ("Version", s(&client["Version"])),
        ("API version", s(&client["ApiVersion"])),
        ("Go version", s(&client["GoVersion"])),
        ("Git commit", s(&client["GitCommit"])),
        ("Built", s(&client["BuildTime"])),
        (
            "OS/Arch",
            format!("{}/{}", s(&client["Os"]), s(&client["Arch"])),
        ),
        ("Context", s(&client["Context"])),
    ];
    for (k, v) in rows {
        o.push_str(&format!(" {:<18} {v}\n", format!("{k}:")));
    }
    let sv = match (conn, server) {
        (Err(e), _) => {
            out(&o);
            return Err(e);
        }
        (_, Some(Err(e))) => {
            out(&o);
            return Err(e.into());
        }
        (_, Some(Ok(v))) => v,
        (Ok(_), None) => Value::Null,
    };
    let platform = s(&sv["Platform"]["Name"]);
    o.push_str(&format!("\nServer: {platform}\n").replace(": \n", ":\n"));
    let comps = sv["Components"].as_array().cloned().unwrap_or_else(|| {
        vec![json!({"Name": "Engine", "Version": sv["Version"], "Details": {
            "ApiVersion": sv["ApiVersion"], "MinAPIVersion": sv["MinAPIVersion"],
            "GoVersion": sv["GoVersion"], "GitCommit": sv["GitCommit"], "BuildTime": sv["BuildTime"],
            "Os": sv["Os"], "Arch": sv["Arch"], "KernelVersion": sv["KernelVersion"],
            "Experimental": sv["Experimental"].as_bool().unwrap_or(false).to_string()}})]
    });
    for comp in comps {
        let name = s(&comp["Name"]);
        o.push_str(&format!(" {name}:\n"));
        o.push_str(&format!("  {:<17} {}\n", "Version:", s(&comp["Version"])));
        let d = &comp["Details"];
        if name == "Engine" {
            o.push_str(&format!(
                "  {:<17} {} (minimum version {})\n",
                "API version:",
                s(&d["ApiVersion"]),
                s(&d["MinAPIVersion"])
            ));
            for (k, key) in [
                ("Go version:", "GoVersion"),
                ("Git commit:", "GitCommit"),
                ("Built:", "BuildTime"),
            ] {
                o.push_str(&format!("  {k:<17} {}\n", s(&d[key])));
            }
            o.push_str(&format!(
                "  {:<17} {}/{}\n",
                "OS/Arch:",
                s(&d["Os"]),
                s(&d["Arch"])
            ));
            o.push_str(&format!(
                "  {:<17} {}\n",
                "Experimental:",
                s(&d["Experimental"])
            ));
        } else if let Some(m) = d.as_object() {
            for (k, v) in m {
                o.push_str(&format!("  {:<17} {}\n", format!("{k}:"), s(v)));
            }
        }
    }
    out(&o);
    Ok(())
}

/// `berth info`.
pub async fn info(c: &Client, f: &FormatOnly) -> CliResult {
    let v = c.info().await?;
    if let Some(tf) = &f.format {
        let t = Template::parse(tf)?;
        out(&format!("{}\n", t.execute(&v)?));
        return Ok(());
    }
    let mut o = String::new();
    o.push_str("Client:\n");
    o.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    o.push_str(" Context:    default\n");
    o.push_str(" Debug Mode: false\n\n");
    o.push_str("Server:\n");
    let n = |k: &str| v[k].as_i64().unwrap_or(0);
    o.push_str(&format!(" Containers: {}\n", n("Containers")));
    o.push_str(&format!("  Running: {}\n", n("ContainersRunning")));
    o.push_str(&format!("  Paused: {}\n", n("ContainersPaused")));
    o.push_str(&format!("  Stopped: {}\n", n("ContainersStopped")));
    o.push_str(&format!(" Images: {}\n", n("Images")));
    o.push_str(&format!(" Server Version: {}\n", s(&v["ServerVersion"])));
    o.push_str(&format!(" Storage Driver: {}\n", s(&v["Driver"])));
    if let Some(st) = v["DriverStatus"].as_array() {
        for p in st {
            o.push_str(&format!("  {}: {}\n", s(&p[0]), s(&p[1])));
        }
    }
    o.push_str(&format!(" Logging Driver: {}\n", s(&v["LoggingDriver"])));
    o.push_str(&format!(" Cgroup Driver: {}\n", s(&v["CgroupDriver"])));
    o.push_str(&format!(" Cgroup Version: {}\n", s(&v["CgroupVersion"])));
    if let Some(rt) = v["Runtimes"].as_object() {
        let mut names: Vec<&String> = rt.keys().collect();
        names.sort();
        o.push_str(&format!(
            " Runtimes: {}\n",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    o.push_str(&format!(" Default Runtime: {}\n", s(&v["DefaultRuntime"])));
    o.push_str(&format!(" Init Binary: {}\n", s(&v["InitBinary"])));
    if let Some(so) = v["SecurityOptions"].as_array() {
        o.push_str(" Security Options:\n");
        for x in so {
            let x = s(x);
            let name = x
                .split(',')
                .next()
                .unwrap_or("")
                .trim_start_matches("name=");
            o.push_str(&format!("  {name}\n"));
        }
    }
    o.push_str(&format!(" Kernel Version: {}\n", s(&v["KernelVersion"])));
    o.push_str(&format!(
        " Operating System: {}\n",
        s(&v["OperatingSystem"])
    ));
    o.push_str(&format!(" OSType: {}\n", s(&v["OSType"])));
    o.push_str(&format!(" Architecture: {}\n", s(&v["Architecture"])));
    o.push_str(&format!(" CPUs: {}\n", n("NCPU")));
    o.push_str(&format!(
        " Total Memory: {}\n",
        crate::format::humanize::bytes_size(n("MemTotal") as f64)
    ));
    o.push_str(&format!(" Name: {}\n", s(&v["Name"])));
    o.push_str(&format!(" ID: {}\n", s(&v["ID"])));
    o.push_str(&format!(" Docker Root Dir: {}\n", s(&v["DockerRootDir"])));
    o.push_str(&format!(
        " Debug Mode: {}\n",
        v["Debug"].as_bool().unwrap_or(false)
    ));
    o.push_str(&format!(
        " Experimental: {}\n",
        v["ExperimentalBuild"].as_bool().unwrap_or(false)
    ));
    o.push_str(&format!(
        " Live Restore Enabled: {}\n",
        v["LiveRestoreEnabled"].as_bool().unwrap_or(false)
    ));
    out(&o);
    if let Some(ws) = v["Warnings"].as_array() {
        for w in ws {
            eprintln!("{}", s(w));
        }
    }
    Ok(())
}

/// `berth system df`.
pub async fn df(c: &Client, a: DfArgs) -> CliResult {
    let v = c.get_json("/system/df").await?;
    // The arithmetic is docker's `diskUsage*Context`: sizes in `HumanSize` (4 digits),
    // "active" and "reclaimable" defined per object type exactly as docker defines them.
    let size = crate::format::humanize::human_size;
    let imgs = v["Images"].as_array().cloned().unwrap_or_default();
    let ctrs = v["Containers"].as_array().cloned().unwrap_or_default();
    let vols = v["Volumes"].as_array().cloned().unwrap_or_default();
    let cache = v["BuildCache"].as_array().cloned().unwrap_or_default();
    let i64_of = |x: &Value| x.as_i64().unwrap_or(0);
    let pct = |r: i64, total: i64| {
        if total > 0 {
            format!("{} ({}%)", size(r as f64), r * 100 / total)
        } else {
            size(r as f64)
        }
    };
    let img_total = i64_of(&v["LayersSize"]);
    let img_active = imgs.iter().filter(|i| i64_of(&i["Containers"]) > 0).count();
    let img_used: i64 = imgs
        .iter()
        .filter(|i| i64_of(&i["Containers"]) != 0)
        .filter(|i| i64_of(&i["Size"]) != -1 && i64_of(&i["SharedSize"]) != -1)
        .map(|i| i64_of(&i["Size"]) - i64_of(&i["SharedSize"]))
        .sum();
    let active = |c: &Value| {
        let s = c["State"].as_str().unwrap_or_default();
        s.contains("running") || s.contains("paused") || s.contains("restarting")
    };
    let ctr_total: i64 = ctrs.iter().map(|c| i64_of(&c["SizeRw"])).sum();
    let ctr_active = ctrs.iter().filter(|c| active(c)).count();
    let ctr_reclaim: i64 = ctrs
        .iter()
        .filter(|c| !active(c))
        .map(|c| i64_of(&c["SizeRw"]))
        .sum();
    let vsize = |x: &Value| i64_of(&x["UsageData"]["Size"]);
    let vol_total: i64 = vols.iter().filter(|x| vsize(x) != -1).map(vsize).sum();
    let vol_active = vols
        .iter()
        .filter(|x| i64_of(&x["UsageData"]["RefCount"]) > 0)
        .count();
    let vol_reclaim: i64 = vols
        .iter()
        .filter(|x| i64_of(&x["UsageData"]["RefCount"]) == 0 && vsize(x) != -1)
        .map(vsize)
        .sum();
    let shared = |x: &Value| x["Shared"].as_bool().unwrap_or(false);
    let in_use = |x: &Value| x["InUse"].as_bool().unwrap_or(false);
    let cache_total: i64 = cache
        .iter()
        .filter(|x| !shared(x))
        .map(|x| i64_of(&x["Size"]))
        .sum();
    let cache_active = cache.iter().filter(|x| in_use(x)).count();
    let cache_reclaim: i64 = cache
        .iter()
        .filter(|x| !shared(x) && !in_use(x))
        .map(|x| i64_of(&x["Size"]))
        .sum();
    let rows = vec![
        json!({"Type": "Images", "TotalCount": imgs.len().to_string(), "Active": img_active.to_string(),
            "Size": size(img_total as f64), "Reclaimable": pct(img_total - img_used, img_total)}),
        json!({"Type": "Containers", "TotalCount": ctrs.len().to_string(), "Active": ctr_active.to_string(),
            "Size": size(ctr_total as f64), "Reclaimable": pct(ctr_reclaim, ctr_total)}),
        json!({"Type": "Local Volumes", "TotalCount": vols.len().to_string(), "Active": vol_active.to_string(),
            "Size": size(vol_total as f64), "Reclaimable": pct(vol_reclaim, vol_total)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(), "Active": cache_active.to_string(),
            "Size": size(cache_total as f64), "Reclaimable": size(cache_reclaim as f64)}),
    ];
    if a.verbose && a.format.as_deref().is_none_or(|f| f == "table") {
        out(&df_verbose_tables(&v, super::now_secs())?);
        return Ok(());
    }
    let fmt = crate::format::Format::new(
        a.format.as_deref(),
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    )?;
    let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    out(&fmt.render(&header, &rows)?);
    Ok(())
}

/// `system df -v` as docker's CLI prints it (`verboseWriteTable`): one table per object
/// type, each with its header even when empty. Images show their first tag only,
/// containers their writable layer size only, volumes their `UsageData`, and the build
/// cache its non-shared total, with records ordered by last use (never used first).
fn df_verbose_tables(v: &Value, now: f64) -> Result<String, CliError> {
    use super::container::{container_row, ps_header};
    use super::image::{image_rows, images_header};
    use crate::format::humanize::{human_duration, human_size};
    use crate::format::Format;
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let table = |tpl: &str, header: &Value, rows: &[Value]| -> Result<String, CliError> {
        Ok(Format::new(Some(&format!("table {tpl}")), tpl)?.render(header, rows)?)
    };
    let mut o = String::from("Images space usage:\n\n");
    let images: Vec<Value> = list("Images")
        .into_iter()
        .flat_map(|mut img| {
            if let Some(tags) = img["RepoTags"].as_array_mut() {
                tags.truncate(1);
            }
            image_rows(&[img], true, now, None)
        })
        .collect();
    o.push_str(&table(
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &images_header(),
        &images,
    )?);
    o.push_str("\nContainers space usage:\n\n");
    let containers: Vec<Value> = list("Containers")
        .into_iter()
        .map(|mut c| {
            c["SizeRootFs"] = json!(0);
            container_row(&c, true, now)
        })
        .collect();
    o.push_str(&table(
        "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &ps_header(),
        &containers,
    )?);
    o.push_str("\nLocal Volumes space usage:\n\n");
    let volumes: Vec<Value> = list("Volumes")
        .iter()
        .map(|vol| {
            let u = &vol["UsageData"];
            let (links, size) = if u.is_object() {
                (
                    u["RefCount"].as_i64().unwrap_or(0).to_string(),
                    human_size(u["Size"].as_i64().unwrap_or(0) as f64),
                )
            } else {
                ("N/A".to_string(), "N/A".to_string())
            };
            json!({"Name": s(&vol["Name"]), "Links": links, "Size": size})
        })
        .collect();
    o.push_str(&table(
        "{{.Name}}\t{{.Links}}\t{{.Size}}",
        &json!({"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
        &volumes,
    )?);
    let mut cache = list("BuildCache");
    let used = |c: &Value| {
        c["LastUsedAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    cache.sort_by(|a, b| {
        let id = |c: &Value| s(&c["ID"]);
        match (used(a), used(b)) {
            (None, None) => id(a).cmp(&id(b)),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.cmp(&y).then_with(|| id(a).cmp(&id(b))),
        }
    });
    let unshared: i64 = cache
        .iter()
        .filter(|c| !c["Shared"].as_bool().unwrap_or(false))
        .map(|c| c["Size"].as_i64().unwrap_or(0))
        .sum();
    o.push_str(&format!(
        "\nBuild cache usage: {}\n\n",
        human_size(unshared as f64)
    ));
    let since = |t: Option<chrono::DateTime<chrono::FixedOffset>>| {
        t.map(|t| {
            let age = now - t.timestamp() as f64;
            format!("{} ago", human_duration(age))
        })
        .unwrap_or_default()
    };
    let rows: Vec<Value> = cache
        .iter()
        .map(|c| {
            let mut id = super::truncate_id(&s(&c["ID"]));
            if c["InUse"].as_bool().unwrap_or(false) {
                id.push('*');
            }
            let created = c["CreatedAt"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            json!({
                "ID": id,
                "CacheType": s(&c["Type"]),
                "Size": human_size_prec(c["Size"].as_i64().unwrap_or(0) as f64, 3),
                "CreatedSince": since(created),
                "LastUsedSince": since(used(c)),
                "UsageCount": c["UsageCount"].as_i64().unwrap_or(0).to_string(),
                "Shared": c["Shared"].as_bool().unwrap_or(false).to_string(),
            })
        })
        .collect();
    o.push_str(&table(
        "{{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &json!({"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
            "CreatedSince": "CREATED", "LastUsedSince": "LAST USED", "UsageCount": "USAGE",
            "Shared": "SHARED"}),
        &rows,
    )?);
    Ok(o)
}

fn prune_report(v: &Value, key: &str, title: &str) -> (String, f64) {
    let mut o = String::new();
    if let Some(list) = v[key].as_array().filter(|l| !l.is_empty()) {
        o.push_str(&format!("{title}:\n"));
        for x in list {
            o.push_str(&format!("{}\n", s(x)));
        }
        o.push('\n');
    }
    (o, v["SpaceReclaimed"].as_f64().unwrap_or(0.0))
}

/// `berth container prune`.
pub async fn prune_containers(c: &Client, a: PruneArgs) -> CliResult {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.") {
        return Ok(());
    }
    let f = super::filters(&a.filter)?;
    let q = berth_client::query(&[("filters", &f.to_string())]);
    let v = c.post_json(&format!("/containers/prune?{q}"), None).await?;
    let (mut o, r) = prune_report(&v, "ContainersDeleted", "Deleted Containers");
    o.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_prec(r, 3)
    ));
    out(&o);
    Ok(())
}

/// `berth system prune`.
pub async fn prune_system(c: &Client, a: SystemPruneArgs) -> CliResult {
    if !a.force {
        let mut w = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
        );
        if a.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        if a.all {
            w.push_str("  - all images without at least one container associated to them\n");
        } else {
            w.push_str("  - all dangling images\n");
        }
        w.push_str("  - unused build cache\n");
        if !confirm(&w) {
            return Ok(());
        }
    }
    let f = super::filters(&a.filter)?;
    let q = berth_client::query(&[("filters", &f.to_string())]);
    let mut total = 0.0;
    let mut o = String::new();
    let v = c.post_json(&format!("/containers/prune?{q}"), None).await?;
    let (t, r) = prune_report(&v, "ContainersDeleted", "Deleted Containers");
    o.push_str(&t);
    total += r;
    let v = c.post_json(&format!("/networks/prune?{q}"), None).await?;
    let (t, _) = prune_report(&v, "NetworksDeleted", "Deleted Networks");
    o.push_str(&t);
    if a.volumes {
        let v = c.post_json(&format!("/volumes/prune?{q}"), None).await?;
        let (t, r) = prune_report(&v, "VolumesDeleted", "Deleted Volumes");
        o.push_str(&t);
        total += r;
    }
    let mut imf = f.clone();
    if !a.all {
        imf["dangling"] = json!({"true": true});
    }
    let iq = berth_client::query(&[("filters", &imf.to_string())]);
    let v = c.post_json(&format!("/images/prune?{iq}"), None).await?;
    if let Some(list) = v["ImagesDeleted"].as_array().filter(|l| !l.is_empty()) {
        o.push_str("Deleted Images:\n");
        for e in list {
            if let Some(u) = e["Untagged"].as_str() {
                o.push_str(&format!("untagged: {u}\n"));
            }
            if let Some(d) = e["Deleted"].as_str() {
                o.push_str(&format!("deleted: {d}\n"));
            }
        }
        o.push('\n');
    }
    total += v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    // Build cache pruning is best effort: a daemon without a build cache answers 404.
    if let Ok(v) = c.post_json("/build/prune", None).await {
        total += v["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    }
    o.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_prec(total, 3)
    ));
    out(&o);
    Ok(())
}

/// `berth system events`.
pub async fn events(c: &Client, a: EventsArgs) -> CliResult {
    let f = super::filters(&a.filter)?;
    let tmpl = match a.format.as_deref() {
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(t) => Some(Template::parse(t)?),
        None => None,
    };
    let mut stream = c.events(&f, a.since.as_deref(), a.until.as_deref()).await?;
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        let line = match &tmpl {
            Some(t) => t.execute(&ev)?,
            None => {
                let nanos = ev["timeNano"].as_i64().unwrap_or(0);
                let ts = chrono::DateTime::from_timestamp(
                    nanos / 1_000_000_000,
                    (nanos % 1_000_000_000) as u32,
                )
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%dT%H:%M:%S%.9f%:z")
                        .to_string()
                })
                .unwrap_or_default();
                let mut attrs: Vec<String> = ev["Actor"]["Attributes"]
                    .as_object()
                    .map(|o| o.iter().map(|(k, v)| format!("{k}={}", s(v))).collect())
                    .unwrap_or_default();
                attrs.sort();
                let attrs = if attrs.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", attrs.join(", "))
                };
                format!(
                    "{ts} {} {} {}{attrs}",
                    s(&ev["Type"]),
                    s(&ev["Action"]),
                    s(&ev["Actor"]["ID"])
                )
            }
        };
        out(&format!("{line}\n"));
    }
    Ok(())
}

fn config_path() -> std::path::PathBuf {
    let dir = std::env::var("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".docker")
        });
    dir.join("config.json")
}

/// Credentials stored by `login` for `server`, as the auth config docker sends.
pub fn stored_auth(server: &str) -> Option<Value> {
    use base64::Engine;
    let cfg: Value = serde_json::from_slice(&std::fs::read(config_path()).ok()?).ok()?;
    let entry = cfg["auths"].get(server)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry["auth"].as_str()?)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some(json!({"username": u, "password": p, "serveraddress": server}))
}

/// `berth login`: check with the daemon (`POST /auth`), then store the credentials in
/// `~/.docker/config.json` like docker's file store.
pub async fn login(c: &Client, a: LoginArgs) -> CliResult {
    use base64::Engine;
    let server = a
        .server
        .clone()
        .unwrap_or_else(|| "https://index.docker.io/v1/".to_string());
    let user = match &a.username {
        Some(u) => u.clone(),
        None => {
            eprint!("Username: ");
            let mut l = String::new();
            let _ = std::io::stdin().lock().read_line(&mut l);
            l.trim().to_string()
        }
    };
    let password = if a.password_stdin {
        let mut l = String::new();
        let _ = std::io::stdin().lock().read_line(&mut l);
        l.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else {
        eprint!("Password: ");
        let mut l = String::new();
        let _ = std::io::stdin().lock().read_line(&mut l);
        l.trim_end_matches(['\n', '\r']).to_string()
    };
    if user.is_empty() || password.is_empty() {
        return Err(CliError::Msg(
            "Error: Cannot perform an interactive login from a non TTY device".to_string(),
        ));
    }
    let body = json!({"username": user, "password": password, "serveraddress": server});
    let r = c.post_json("/auth", Some(&body)).await?;
    let path = config_path();
    let mut cfg: Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}));
    if !cfg["auths"].is_object() {
        cfg["auths"] = json!({});
    }
    cfg["auths"][&server] = json!({
        "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(&cfg).expect("serializing a Value cannot fail");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| CliError::Io {
            path: path.display().to_string(),
            source,
        })?;
    println!(
        "{}",
        r["Status"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("Login Succeeded")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_verbose_volume_and_cache_tables() {
        let v = json!({
            "Images": [],
            "Containers": [],
            "Volumes": [
                {"Name": "big", "UsageData": {"Size": 536870912, "RefCount": 2}},
                {"Name": "unknown"}
            ],
            "BuildCache": [
                {"ID": "bbbbbbbbbbbbbbbb", "Type": "regular", "Size": 2000, "Shared": false,
                 "InUse": true, "UsageCount": 3, "CreatedAt": "2023-11-14T22:13:00Z",
                 "LastUsedAt": "2023-11-14T22:13:00Z"},
                {"ID": "aaaaaaaaaaaaaaaa", "Type": "regular", "Size": 5, "Shared": true,
                 "CreatedAt": "2023-11-14T22:13:00Z"}
            ]
        });
        let now = 1_700_000_000.0 + 20.0 * 60.0;
        let t = df_verbose_tables(&v, now).expect("tables");
        let vols = t
            .split("Local Volumes space usage:\n\n")
            .nth(1)
            .expect("volumes")
            .split("\nBuild cache usage")
            .next()
            .expect("end");
        assert_eq!(
            vols,
            "VOLUME NAME   LINKS     SIZE\nbig           2         536.9MB\nunknown       N/A       N/A\n"
        );
        // Only unshared records count; the never-used one sorts first; in use gets a `*`.
        let cache = t.split("Build cache usage: ").nth(1).expect("cache");
        assert!(cache.starts_with("2kB\n\n"), "{cache}");
        let lines: Vec<&str> = cache.lines().skip(2).collect();
        assert!(lines[0].starts_with("CACHE ID"), "{cache}");
        assert!(lines[1].starts_with("aaaaaaaaaaaa "), "{cache}");
        assert!(lines[2].starts_with("bbbbbbbbbbbb* "), "{cache}");
        assert!(
            t.starts_with("Images space usage:\n\nREPOSITORY   TAG"),
            "{t}"
        );
    }
}
