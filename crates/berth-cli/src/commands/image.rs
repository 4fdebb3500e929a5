//! Image commands: images, rmi, prune, history, tag, import, save, load, pull, push, build.
//!
//! Streams from the daemon (pull, push, load, import, build) are JSON messages printed as
//! docker prints them on a non-terminal: one plain line per status, `stream` text as is, and
//! an `errorDetail` turned into the command's error.

use std::io::Read;

use berth_client::{bytes_body, stream_body, Client, JsonStream};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{go_time_string, now_secs, out, parse_rfc3339, truncate_id};
use crate::cli::{
    BuildArgs, HistoryArgs, ImagePruneArgs, ImagesArgs, ImportArgs, LoadArgs, PullArgs, PushArgs,
    RmiArgs, SaveArgs, TagArgs,
};
use crate::error::{CliError, CliResult};
use crate::format::humanize::{human_duration, human_size_prec};
use crate::format::Format;

/// One JSON progress message as the line docker prints for it, `None` to print nothing.
/// An error message becomes `Err`.
pub fn progress_line(m: &Value) -> CliResult<Option<String>> {
    if let Some(e) = m.get("errorDetail").or_else(|| m.get("error")) {
        let msg = e
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| e.as_str())
            .or_else(|| m.get("error").and_then(Value::as_str))
            .unwrap_or("unknown error");
        return Err(CliError::Msg(msg.to_string()));
    }
    if m.get("aux").is_some() {
        return Ok(None);
    }
    if let Some(s) = m.get("stream").and_then(Value::as_str) {
        return Ok(Some(s.to_string()));
    }
    let status = m.get("status").and_then(Value::as_str).unwrap_or_default();
    let has_progress = m
        .get("progressDetail")
        .and_then(Value::as_object)
        .is_some_and(|o| !o.is_empty());
    if has_progress {
        // Byte counters only make sense on a terminal that can redraw lines.
        return Ok(None);
    }
    if status.is_empty() {
        return Ok(None);
    }
    let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
    Ok(Some(if id.is_empty() {
        format!("{status}\n")
    } else {
        format!("{id}: {status}\n")
    }))
}

/// Print a progress stream to stdout; returns the `aux` payloads (image ids of builds).
pub async fn print_stream(mut s: JsonStream, quiet: bool) -> CliResult<Vec<Value>> {
    let mut aux = Vec::new();
    while let Some(m) = s.next().await {
        let m = m?;
        if let Some(a) = m.get("aux") {
            aux.push(a.clone());
        }
        if let Some(line) = progress_line(&m)? {
            if !quiet {
                out(&line);
            }
        }
    }
    Ok(aux)
}

/// Rows of `images`: one per tag, `<none>` for untagged images.
pub fn image_rows(list: &[Value], trunc: bool, now: f64, filter_ref: Option<&str>) -> Vec<Value> {
    let mut rows = Vec::new();
    for img in list {
        let id = img["Id"].as_str().unwrap_or_default();
        let short = if trunc {
            truncate_id(id)
        } else {
            id.to_string()
        };
        let created = img["Created"].as_i64().unwrap_or(0);
        let size = img["Size"].as_i64().unwrap_or(0) as f64;
        let containers = match img["Containers"].as_i64() {
            Some(n) if n >= 0 => n.to_string(),
            _ => "N/A".to_string(),
        };
        let digests: Vec<String> = img["RepoDigests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let mut tags: Vec<(String, String)> = img["RepoTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "<none>:<none>")
                    .map(|t| {
                        let i = t.rfind(':').unwrap_or(t.len());
                        (t[..i].to_string(), t.get(i + 1..).unwrap_or("").to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if tags.is_empty() {
            tags.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in tags {
            if let Some(r) = filter_ref {
                let (fr, ft) = match r.rfind(':') {
                    Some(i) if !r[i..].contains('/') => (&r[..i], Some(&r[i + 1..])),
                    _ => (r, None),
                };
                if repo != fr || ft.is_some_and(|t| t != tag) {
                    continue;
                }
            }
            let digest = digests
                .iter()
                .find(|d| d.split('@').next() == Some(repo.as_str()))
                .and_then(|d| d.split_once('@').map(|(_, h)| h.to_string()))
                .unwrap_or_else(|| "<none>".to_string());
            rows.push(json!({
                "ID": short,
                "Repository": repo,
                "Tag": tag,
                "Digest": digest,
                "CreatedSince": format!("{} ago", human_duration(now - created as f64)),
                "CreatedAt": go_time_string(created),
                "Size": human_size_prec(size, 3),
                "SharedSize": match img["SharedSize"].as_i64() {
                    Some(s) if s >= 0 => human_size_prec(s as f64, 3),
                    _ => "N/A".to_string(),
                },
                "UniqueSize": match img["SharedSize"].as_i64() {
                    Some(s) if s >= 0 => human_size_prec(size - s as f64, 3),
                    _ => "N/A".to_string(),
                },
                "VirtualSize": crate::format::humanize::human_size(size),
                "Containers": containers,
            }));
        }
    }
    rows
}

/// Column titles of `images`.
pub fn images_header() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
        "Containers": "CONTAINERS",
    })
}

/// Default `images` table.
pub const IMAGES_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// `berth images`.
pub async fn images(c: &Client, a: ImagesArgs) -> CliResult {
    let filters = super::filters(&a.filter)?;
    let list = c.image_list(a.all, a.digests, &filters).await?;
    let rows = image_rows(&list, !a.no_trunc, now_secs(), a.reference.as_deref());
    if a.quiet && a.format.is_none() {
        let mut seen = std::collections::HashSet::new();
        let mut s = String::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or_default();
            if seen.insert(id.to_string()) {
                s.push_str(id);
                s.push('\n');
            }
        }
        out(&s);
        return Ok(());
    }
    let table = if a.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        IMAGES_TABLE
    };
    let fmt = Format::new(a.format.as_deref(), table)?;
    out(&fmt.render(&images_header(), &rows)?);
    Ok(())
}

/// `berth rmi`.
pub async fn rmi(c: &Client, a: RmiArgs) -> CliResult {
    let mut errs = Vec::new();
    for n in &a.images {
        match c.image_remove(n, a.force, a.no_prune).await {
            Ok(list) => {
                for e in list {
                    if let Some(u) = e["Untagged"].as_str() {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = e["Deleted"].as_str() {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => errs.push(CliError::from(e).render()),
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(CliError::Many(errs))
    }
}

/// `berth image prune`.
pub async fn prune(c: &Client, a: ImagePruneArgs) -> CliResult {
    let mut f = super::filters(&a.filter)?;
    if !a.all {
        f["dangling"] = json!({"true": true});
    }
    if !a.force {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        if !super::system::confirm(&format!("WARNING! This will remove {what}.")) {
            return Ok(());
        }
    }
    let q = berth_client::query(&[("filters", &f.to_string())]);
    let r = c.post_json(&format!("/images/prune?{q}"), None).await?;
    let mut s = String::new();
    if let Some(list) = r["ImagesDeleted"].as_array().filter(|l| !l.is_empty()) {
        s.push_str("Deleted Images:\n");
        for e in list {
            if let Some(u) = e["Untagged"].as_str() {
                s.push_str(&format!("untagged: {u}\n"));
            }
            if let Some(d) = e["Deleted"].as_str() {
                s.push_str(&format!("deleted: {d}\n"));
            }
        }
        s.push('\n');
    }
    let reclaimed = r["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_prec(reclaimed, 3)
    ));
    out(&s);
    Ok(())
}

/// `berth history`.
pub async fn history(c: &Client, a: HistoryArgs) -> CliResult {
    let v = c.get_json(&format!("/images/{}/history", a.image)).await?;
    let now = now_secs();
    let trunc = !a.no_trunc;
    let rows: Vec<Value> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let id = h["Id"].as_str().unwrap_or_default();
            let id = if id.is_empty() || id == "<missing>" {
                "<missing>".to_string()
            } else if trunc {
                truncate_id(id)
            } else {
                id.to_string()
            };
            let created = h["Created"].as_i64().unwrap_or(0);
            let mut by = h["CreatedBy"]
                .as_str()
                .unwrap_or_default()
                .replace('\t', " ");
            if trunc {
                by = super::ellipsis(&by, 45);
            }
            let size = h["Size"].as_i64().unwrap_or(0);
            json!({
                "ID": id,
                "CreatedSince": if a.human {
                    format!("{} ago", human_duration(now - created as f64))
                } else {
                    rfc3339_local(created)
                },
                "CreatedAt": rfc3339_local(created),
                "CreatedBy": by,
                "Size": if a.human { human_size_prec(size as f64, 3) } else { size.to_string() },
                "Comment": h["Comment"].as_str().unwrap_or_default(),
            })
        })
        .collect();
    let user = if a.quiet {
        Some("{{.ID}}")
    } else {
        a.format.as_deref()
    };
    // Without -H docker shows absolute times under "CREATED AT".
    let table = if a.human {
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    } else {
        "{{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    };
    let fmt = Format::new(user, table)?;
    let header = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    out(&fmt.render(&header, &rows)?);
    Ok(())
}

/// Go's `time.Unix(s, 0).Format(time.RFC3339)` in local time.
fn rfc3339_local(secs: i64) -> String {
    use chrono::{Local, SecondsFormat, TimeZone};
    Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// `berth tag`.
pub async fn tag(c: &Client, a: TagArgs) -> CliResult {
    let (repo, tag) = super::container::split_reference(&a.target);
    Ok(c.image_tag(&a.source, &repo, Some(&tag)).await?)
}

/// Read a local file (or stdin for `-`) fully; tar archives for import/load are bounded by
/// what the user hands us, and the daemon needs a Content-Length-free stream either way.
fn read_input(path: Option<&str>) -> CliResult<Bytes> {
    let mut buf = Vec::new();
    match path {
        None | Some("-") => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|source| CliError::Io {
                    path: "stdin".into(),
                    source,
                })?;
        }
        Some(p) => {
            buf = std::fs::read(p).map_err(|source| CliError::Io {
                path: p.to_string(),
                source,
            })?;
        }
    }
    Ok(Bytes::from(buf))
}

/// A file as a streamed request body, read in 256 KiB chunks on the blocking pool.
fn file_stream(path: &str) -> CliResult<berth_client::Body> {
    let f = std::fs::File::open(path).map_err(|source| CliError::Io {
        path: path.to_string(),
        source,
    })?;
    let stream = futures_util::stream::unfold(Some(f), |state| async move {
        let mut f = state?;
        let r = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let n = f.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((buf, f))
        })
        .await;
        match r {
            Ok(Ok((buf, _))) if buf.is_empty() => None,
            Ok(Ok((buf, f))) => Some((Ok(Bytes::from(buf)), Some(f))),
            Ok(Err(e)) => Some((Err(e), None)),
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    Ok(stream_body(stream))
}

fn input_body(path: Option<&str>) -> CliResult<berth_client::Body> {
    match path {
        Some(p) if p != "-" => file_stream(p),
        other => Ok(bytes_body(read_input(other)?)),
    }
}

/// `berth import`.
pub async fn import(c: &Client, a: ImportArgs) -> CliResult {
    let mut q: Vec<(&str, String)> = Vec::new();
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    q.push((
        "fromSrc",
        if is_url { a.source.clone() } else { "-".into() },
    ));
    if let Some(r) = &a.reference {
        let (repo, tag) = super::container::split_reference(r);
        q.push(("repo", repo));
        if r.contains(':') && !r.ends_with(&format!("/{tag}")) {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = format!("/images/create?{}", berth_client::query(&pairs));
    let body = if is_url {
        berth_client::empty_body()
    } else {
        input_body(Some(&a.source))?
    };
    let resp = c
        .request(
            http::Method::POST,
            &path,
            body,
            &[("content-type", "application/x-tar")],
        )
        .await?;
    let mut s = resp.json_stream();
    while let Some(m) = s.next().await {
        let m = m?;
        progress_line(&m)?;
        if let Some(st) = m["status"].as_str() {
            // The final status is the new image id; byte counters are noise off a terminal.
            if m["progressDetail"].as_object().is_none_or(|o| o.is_empty()) {
                println!("{st}");
            }
        }
    }
    Ok(())
}

/// `berth save`.
pub async fn save(c: &Client, a: SaveArgs) -> CliResult {
    if a.output.is_none() && crate::stdio::is_tty(1) {
        return Err(CliError::Msg(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".to_string(),
        ));
    }
    let mut pairs: Vec<(&str, &str)> = a.images.iter().map(|n| ("names", n.as_str())).collect();
    if let Some(p) = &a.platform {
        pairs.push(("platform", p));
    }
    let path = format!("/images/get?{}", berth_client::query(&pairs));
    let mut resp = c
        .request(http::Method::GET, &path, berth_client::empty_body(), &[])
        .await?;
    use std::io::Write;
    let mut sink: Box<dyn Write> = match &a.output {
        Some(p) => {
            let tmp = format!("{p}.berth-tmp");
            Box::new(std::fs::File::create(&tmp).map_err(|source| CliError::Io {
                path: tmp.clone(),
                source,
            })?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    while let Some(chunk) = resp.chunk().await {
        let chunk = chunk?;
        sink.write_all(&chunk).map_err(|source| CliError::Io {
            path: a.output.clone().unwrap_or_else(|| "stdout".into()),
            source,
        })?;
    }
    sink.flush().map_err(|source| CliError::Io {
        path: a.output.clone().unwrap_or_else(|| "stdout".into()),
        source,
    })?;
    drop(sink);
    if let Some(p) = &a.output {
        // Written under a temporary name first so a failed save never leaves a torn file.
        std::fs::rename(format!("{p}.berth-tmp"), p).map_err(|source| CliError::Io {
            path: p.clone(),
            source,
        })?;
    }
    Ok(())
}

/// `berth load`.
pub async fn load(c: &Client, a: LoadArgs) -> CliResult {
    if a.input.is_none() && crate::stdio::is_tty(0) {
        return Err(CliError::Msg(
            "requested load from stdin, but stdin is empty".to_string(),
        ));
    }
    let mut pairs = vec![("quiet", if a.quiet { "1" } else { "0" })];
    if let Some(p) = &a.platform {
        pairs.push(("platform", p));
    }
    let path = format!("/images/load?{}", berth_client::query(&pairs));
    let body = input_body(a.input.as_deref())?;
    let resp = c
        .request(
            http::Method::POST,
            &path,
            body,
            &[("content-type", "application/x-tar")],
        )
        .await?;
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        print_stream(resp.json_stream(), false).await?;
    } else {
        out(&String::from_utf8_lossy(&resp.bytes().await?));
    }
    Ok(())
}

/// `berth pull`.
pub async fn pull(c: &Client, a: PullArgs) -> CliResult {
    let image = if a.all_tags {
        a.image.clone()
    } else {
        super::container::normalize_reference(&a.image)
    };
    if !a.all_tags && !a.quiet {
        let (_, tag) = super::container::split_reference(&a.image);
        if !a.image.contains('@') && !a.image.rsplit('/').next().unwrap_or("").contains(':') {
            println!("Using default tag: {tag}");
        }
    }
    super::container::pull_image(c, &image, a.platform.as_deref(), false, a.quiet).await?;
    if a.quiet {
        println!("{image}");
    }
    Ok(())
}

/// The `X-Registry-Auth` header docker sends: base64url JSON of the stored credentials, or
/// `{}` when there are none.
pub fn registry_auth(server: &str) -> String {
    use base64::Engine;
    let creds = super::system::stored_auth(server).unwrap_or_else(|| json!({}));
    base64::engine::general_purpose::URL_SAFE.encode(creds.to_string())
}

/// `berth push`.
pub async fn push(c: &Client, a: PushArgs) -> CliResult {
    let (repo, tag) = super::container::split_reference(&a.image);
    let registry = repo
        .split('/')
        .next()
        .filter(|r| r.contains('.') || r.contains(':') || *r == "localhost")
        .unwrap_or("https://index.docker.io/v1/")
        .to_string();
    let auth = registry_auth(&registry);
    let mut q = Vec::new();
    if !a.all_tags {
        q.push(("tag", tag.as_str()));
    }
    let path = format!("/images/{repo}/push?{}", berth_client::query(&q));
    let resp = c
        .request(
            http::Method::POST,
            &path,
            berth_client::empty_body(),
            &[("x-registry-auth", &auth)],
        )
        .await?;
    print_stream(resp.json_stream(), a.quiet).await?;
    Ok(())
}

/// Patterns of a `.dockerignore`: comments and blanks skipped, `!` exceptions, leading `/`
/// and `./` dropped. Matching is docker's: the last matching pattern wins.
pub fn read_dockerignore(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (neg, p) = match l.strip_prefix('!') {
                        Some(p) => ("!", p.trim()),
                        None => ("", l),
                    };
                    let p = p.trim_start_matches("./").trim_start_matches('/');
                    format!("{neg}{}", p.trim_end_matches('/'))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Glob match with `*` (not crossing `/`), `?`, and `**` (any number of path elements).
pub fn glob_match(pat: &str, path: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        if p.starts_with(b"**") {
            let rest = p[2..].strip_prefix(b"/").unwrap_or(&p[2..]);
            return (0..=s.len())
                .any(|i| (i == 0 || s[i - 1] == b'/' || rest.is_empty()) && m(rest, &s[i..]));
        }
        match p[0] {
            b'*' => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| m(&p[1..], &s[i..])),
            b'?' => !s.is_empty() && s[0] != b'/' && m(&p[1..], &s[1..]),
            c => !s.is_empty() && s[0] == c && m(&p[1..], &s[1..]),
        }
    }
    m(pat.as_bytes(), path.as_bytes())
}

/// True when `.dockerignore` excludes `rel` (a path relative to the context, `/`-separated).
/// A pattern matching a parent directory excludes everything below it.
pub fn ignored(patterns: &[String], rel: &str) -> bool {
    let mut excluded = false;
    for p in patterns {
        let (neg, pat) = match p.strip_prefix('!') {
            Some(x) => (true, x),
            None => (false, p.as_str()),
        };
        let mut hit = glob_match(pat, rel);
        if !hit {
            let mut prefix = String::new();
            for part in rel.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                if prefix != rel && glob_match(pat, &prefix) {
                    hit = true;
                    break;
                }
            }
        }
        if hit {
            excluded = !neg;
        }
    }
    excluded
}

/// Tar the build context, leaving out what `.dockerignore` excludes (but never the
/// Dockerfile or `.dockerignore`, which the daemon needs).
pub fn context_tar(dir: &std::path::Path, dockerfile: &str) -> CliResult<Vec<u8>> {
    let patterns = read_dockerignore(dir);
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let io = |source: std::io::Error| CliError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut stack = vec![dir.to_path_buf()];
    let mut entries = Vec::new();
    while let Some(d) = stack.pop() {
        let mut list: Vec<_> = std::fs::read_dir(&d)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        list.sort_by_key(|e| e.file_name());
        for e in list {
            let p = e.path();
            let rel = p
                .strip_prefix(dir)
                .expect("walked paths are below the context")
                .to_string_lossy()
                .replace('\\', "/");
            let keep = rel == dockerfile || rel == ".dockerignore";
            if !keep && ignored(&patterns, &rel) {
                // A directory may still hold an exception (`!dir/keep`): descend anyway.
                let has_exceptions = patterns.iter().any(|p| p.starts_with('!'));
                if !(has_exceptions && e.file_type().map_err(io)?.is_dir()) {
                    continue;
                }
            }
            let ft = e.file_type().map_err(io)?;
            if ft.is_dir() {
                stack.push(p.clone());
                if !ignored(&patterns, &rel) {
                    entries.push((rel, p));
                }
            } else {
                entries.push((rel, p));
            }
        }
    }
    entries.sort();
    for (rel, p) in entries {
        b.append_path_with_name(&p, &rel)
            .map_err(|source| CliError::Io {
                path: p.display().to_string(),
                source,
            })?;
    }
    b.into_inner().map_err(io)
}

/// docker's `IsGitURL`: such a context is fetched by the daemon (`remote=`), the CLI
/// sends no tar.
fn is_git_url(s: &str) -> bool {
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("github.com/") {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    let path = s.split(['#', '?']).next().unwrap_or(s);
    (lower.starts_with("http://") || lower.starts_with("https://")) && path.ends_with(".git")
}

/// `berth build`.
pub async fn build(c: &Client, a: BuildArgs) -> CliResult {
    let dir = std::path::PathBuf::from(&a.context);
    let dockerfile_name = a.file.clone().unwrap_or_else(|| "Dockerfile".to_string());
    let git = is_git_url(&a.context);
    let (tar, df_param) = if git {
        (Vec::new(), dockerfile_name.clone())
    } else if a.file.as_deref() == Some("-") {
        // Dockerfile from stdin: add it to the context under a fixed name.
        let df = read_input(Some("-"))?;
        let mut t = context_tar(&dir, "")?;
        let mut b = tar::Builder::new(Vec::new());
        let mut ar = tar::Archive::new(&t[..]);
        for e in ar.entries().map_err(|source| CliError::Io {
            path: a.context.clone(),
            source,
        })? {
            let mut e = e.map_err(|source| CliError::Io {
                path: a.context.clone(),
                source,
            })?;
            let mut h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).map_err(|source| CliError::Io {
                path: a.context.clone(),
                source,
            })?;
            let path = e
                .path()
                .map_err(|source| CliError::Io {
                    path: a.context.clone(),
                    source,
                })?
                .into_owned();
            b.append_data(&mut h, path, &data[..])
                .map_err(|source| CliError::Io {
                    path: a.context.clone(),
                    source,
                })?;
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(df.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, ".berth-dockerfile", &df[..])
            .map_err(|source| CliError::Io {
                path: a.context.clone(),
                source,
            })?;
        t = b.into_inner().map_err(|source| CliError::Io {
            path: a.context.clone(),
            source,
        })?;
        (t, ".berth-dockerfile".to_string())
    } else {
        let rel = std::path::Path::new(&dockerfile_name);
        let rel = if rel.is_absolute() {
            rel.strip_prefix(&dir)
                .unwrap_or(rel)
                .to_string_lossy()
                .into_owned()
        } else {
            dockerfile_name.clone()
        };
        (context_tar(&dir, &rel)?, rel)
    };
    let mut q: Vec<(&str, String)> = vec![("dockerfile", df_param)];
    if git {
        q.push(("remote", a.context.clone()));
    }
    for t in &a.tag {
        q.push(("t", t.clone()));
    }
    let mut args = serde_json::Map::new();
    for ba in &a.build_arg {
        match ba.split_once('=') {
            Some((k, v)) => {
                args.insert(k.into(), json!(v));
            }
            None => {
                if let Ok(v) = std::env::var(ba) {
                    args.insert(ba.clone(), json!(v));
                }
            }
        }
    }
    if !args.is_empty() {
        q.push(("buildargs", Value::Object(args).to_string()));
    }
    let mut labels = serde_json::Map::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.into(), json!(v));
    }
    if !labels.is_empty() {
        q.push(("labels", Value::Object(labels).to_string()));
    }
    if a.no_cache {
        q.push(("nocache", "1".into()));
    }
    if a.pull {
        q.push(("pull", "1".into()));
    }
    if a.quiet {
        q.push(("q", "1".into()));
    }
    q.push(("rm", if a.rm { "1" } else { "0" }.into()));
    if a.force_rm {
        q.push(("forcerm", "1".into()));
    }
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    if let Some(n) = &a.network {
        q.push(("networkmode", n.clone()));
    }
    let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let path = format!("/build?{}", berth_client::query(&pairs));
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE.encode("{}")
    };
    let resp = c
        .request(
            http::Method::POST,
            &path,
            bytes_body(tar),
            &[
                ("content-type", "application/x-tar"),
                ("x-registry-config", &auth),
            ],
        )
        .await?;
    let aux = print_stream(resp.json_stream(), a.quiet).await?;
    let id = aux
        .iter()
        .rev()
        .find_map(|v| v.get("ID").and_then(Value::as_str))
        .map(String::from);
    if let Some(id) = &id {
        if a.quiet {
            println!("{id}");
        }
        if let Some(f) = &a.iidfile {
            std::fs::write(f, id).map_err(|source| CliError::Io {
                path: f.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// Parse `Created` of image inspect (RFC 3339) for callers that show image ages.
pub fn image_created(v: &Value) -> Option<i64> {
    v["Created"].as_str().and_then(parse_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_table_golden() {
        let now = 1_700_000_000.0;
        let list = vec![
            json!({"Id": "sha256:ab12cd34ef567890aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "RepoTags": ["busybox:latest", "localhost:5000/bb:v1"], "Created": 1_699_000_000,
                "Size": 4_261_000, "Containers": -1}),
            json!({"Id": "sha256:ffff0000ffff0000ffff", "RepoTags": [], "Created": 1_699_999_000,
                "Size": 1_200}),
        ];
        let rows = image_rows(&list, true, now, None);
        let fmt = Format::new(None, IMAGES_TABLE).expect("parses");
        let got = fmt.render(&images_header(), &rows).expect("renders");
        let want = "\
REPOSITORY          TAG       IMAGE ID       CREATED          SIZE
busybox             latest    ab12cd34ef56   11 days ago      4.26MB
localhost:5000/bb   v1        ab12cd34ef56   11 days ago      4.26MB
<none>              <none>    ffff0000ffff   16 minutes ago   1.2kB
";
        assert_eq!(got, want);
        let only = image_rows(&list, true, now, Some("busybox"));
        assert_eq!(only.len(), 1);
        let f = Format::new(
            Some("{{.Repository}}:{{.Tag}} {{.Containers}}"),
            IMAGES_TABLE,
        )
        .expect("parses");
        assert_eq!(
            f.render(&images_header(), &only).expect("renders"),
            "busybox:latest N/A\n"
        );
    }

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress_line(
                &json!({"status": "Pulling fs layer", "id": "abc", "progressDetail": {}})
            )
            .expect("no error"),
            Some("abc: Pulling fs layer\n".to_string())
        );
        assert_eq!(
            progress_line(&json!({"status": "Downloading", "id": "abc", "progressDetail": {"current": 1, "total": 2}}))
                .expect("no error"),
            None
        );
        assert_eq!(
            progress_line(&json!({"stream": "Step 1/2 : FROM busybox\n"})).expect("no error"),
            Some("Step 1/2 : FROM busybox\n".to_string())
        );
        assert!(
            progress_line(&json!({"errorDetail": {"message": "boom"}, "error": "boom"})).is_err()
        );
    }

    #[test]
    fn dockerignore_rules() {
        let pats = vec![
            "*.log".to_string(),
            "build".to_string(),
            "!build/keep.txt".to_string(),
            "**/tmp".to_string(),
        ];
        assert!(ignored(&pats, "a.log"));
        assert!(!ignored(&pats, "sub/a.log"));
        assert!(ignored(&pats, "build/x.o"));
        assert!(!ignored(&pats, "build/keep.txt"));
        assert!(ignored(&pats, "x/y/tmp"));
        assert!(ignored(&pats, "tmp/file"));
        assert!(!ignored(&pats, "src/main.rs"));
    }

    #[test]
    fn context_honours_dockerignore() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        std::fs::write(d.path().join(".dockerignore"), "secret\n*.tmp\n").expect("write");
        std::fs::write(d.path().join("secret"), "x").expect("write");
        std::fs::write(d.path().join("a.tmp"), "x").expect("write");
        std::fs::create_dir(d.path().join("src")).expect("mkdir");
        std::fs::write(d.path().join("src/app"), "x").expect("write");
        let t = context_tar(d.path(), "Dockerfile").expect("tar");
        let mut names: Vec<String> = tar::Archive::new(&t[..])
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        names.sort();
        assert_eq!(names, vec![".dockerignore", "Dockerfile", "src", "src/app"]);
    }
}
