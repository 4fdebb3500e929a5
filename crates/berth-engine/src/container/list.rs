//! `ps`: container summaries with Docker's filters.

use super::state::Status;
use super::Container;
use crate::filters::Filters;
use crate::{Engine, Error, Result};
use serde_json::{json, Value};

#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub size: bool,
    pub filters: Filters,
}

const FILTERS: &[&str] = &[
    "id",
    "name",
    "label",
    "status",
    "ancestor",
    "exited",
    "before",
    "since",
    "health",
    "network",
    "volume",
    "publish",
    "expose",
    "is-task",
    "isolation",
];

impl Engine {
    pub async fn list_containers(&self, o: ListOptions) -> Result<Vec<Value>> {
        o.filters.validate(FILTERS)?;
        for s in o.filters.get("status") {
            if Status::parse(s).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter 'status={s}'"
                )));
            }
        }
        let mut all: Vec<Container> = self.all_handles().iter().map(|h| h.snapshot()).collect();
        all.sort_by(|a, b| b.created.cmp(&a.created));
        let lookup_created = |r: &str| -> Result<String> {
            self.lookup(r)
                .map(|h| h.snapshot().created)
                .map_err(|_| Error::NotFound(format!("No such container: {r}")))
        };
        let before = o
            .filters
            .get("before")
            .first()
            .map(|r| lookup_created(r))
            .transpose()?;
        let since = o
            .filters
            .get("since")
            .first()
            .map(|r| lookup_created(r))
            .transpose()?;
        let mut ancestors = Vec::new();
        for a in o.filters.get("ancestor") {
            let a = a.clone();
            if let Ok(img) = self.blocking(move |e| Ok(e.images().get(&a)?)).await {
                ancestors.push(img.id);
            }
        }
        let f = &o.filters;
        let all_implied = o.all
            || f.has("status")
            || f.has("exited")
            || o.limit.is_some()
            || before.is_some()
            || since.is_some();
        let mut out = Vec::new();
        for c in all {
            let st = c.state.status();
            if !all_implied && !matches!(st, Status::Running | Status::Paused | Status::Restarting)
            {
                continue;
            }
            if f.has("id") && !f.get("id").iter().any(|p| c.id.starts_with(p.as_str())) {
                continue;
            }
            if f.has("name")
                && !f
                    .get("name")
                    .iter()
                    .any(|n| c.bare_name().contains(n.trim_start_matches('/')))
            {
                continue;
            }
            if !f.match_labels("label", c.config.labels.as_ref()) {
                continue;
            }
            if f.has("status") && !f.get("status").iter().any(|s| s == st.as_str()) {
                continue;
            }
            if f.has("exited")
                && (st != Status::Exited
                    || !f
                        .get("exited")
                        .iter()
                        .any(|e| e.parse::<i64>().ok() == Some(c.state.exit_code)))
            {
                continue;
            }
            if f.has("ancestor")
                && !ancestors.contains(&c.image)
                && !f.get("ancestor").contains(&c.config.image)
            {
                continue;
            }
            if before.as_ref().is_some_and(|b| c.created >= *b)
                || since.as_ref().is_some_and(|s| c.created <= *s)
            {
                continue;
            }
            if f.has("health") {
                let hs = c
                    .state
                    .health
                    .as_ref()
                    .map(|h| h.status.as_str())
                    .unwrap_or("none");
                if !f.get("health").iter().any(|x| x == hs) {
                    continue;
                }
            }
            if !self.container_matches_network_filters(&c, f) {
                continue;
            }
            if f.has("volume")
                && !f
                    .get("volume")
                    .iter()
                    .any(|v| super::mounts::uses_volume(&c.mount_points, v))
            {
                continue;
            }
            let mut v = summary(&c);
            self.fill_summary_network(&c, &mut v);
            if o.size {
                let key = c.id.clone();
                let rw = self
                    .blocking(move |e| Ok(e.images().rw_layer_size(&key).unwrap_or(0)))
                    .await?;
                let img = c.image.clone();
                let root = self
                    .blocking(move |e| Ok(e.images().get(&img).map(|i| i.size).unwrap_or(0)))
                    .await?;
                v["SizeRw"] = json!(rw);
                v["SizeRootFs"] = json!(rw + root);
            }
            out.push(v);
        }
        if let Some(n) = o.limit.filter(|n| *n > 0) {
            out.truncate(n);
        }
        Ok(out)
    }
}

/// Docker's human status line: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
pub fn status_text(c: &Container) -> String {
    let now = chrono::Utc::now();
    let ago = |t: &Option<String>| {
        t.as_deref()
            .and_then(crate::util::parse_time)
            .map(|t| human_duration((now - t).to_std().unwrap_or_default()))
            .unwrap_or_else(|| "Less than a second".into())
    };
    match c.state.status() {
        Status::Created => "Created".into(),
        Status::Running => {
            // Docker appends the health state: "(healthy)", "(health: starting)".
            let health = match c.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)".to_string(),
                Some(s) if !s.is_empty() => format!(" ({s})"),
                _ => String::new(),
            };
            format!("Up {}{health}", ago(&c.state.started_at))
        }
        Status::Paused => format!("Up {} (Paused)", ago(&c.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            ago(&c.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => {
            if c.state.started_at.is_none() {
                "Created".into()
            } else {
                format!(
                    "Exited ({}) {} ago",
                    c.state.exit_code,
                    ago(&c.state.finished_at)
                )
            }
        }
    }
}

/// go-units HumanDuration.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let m = s / 60;
    if m == 1 {
        return "About a minute".into();
    }
    if m < 60 {
        return format!("{m} minutes");
    }
    let h = (s as f64 / 3600.0).round() as u64;
    if h == 1 {
        return "About an hour".into();
    }
    if h < 48 {
        return format!("{h} hours");
    }
    if h < 24 * 7 * 2 {
        return format!("{} days", h / 24);
    }
    if h < 24 * 30 * 2 {
        return format!("{} weeks", h / 24 / 7);
    }
    if h < 24 * 365 * 2 {
        return format!("{} months", h / 24 / 30);
    }
    format!("{} years", h / 24 / 365)
}

/// The `Command` column as dockerd builds it: arguments holding a space are wrapped in
/// single quotes (`sh -c 'echo a; exit 3'`), nothing else is escaped.
fn ps_command(path: &str, args: &[String]) -> String {
    let mut command = path.to_string();
    for a in args {
        command.push(' ');
        if a.contains(' ') {
            command.push('\'');
            command.push_str(a);
            command.push('\'');
        } else {
            command.push_str(a);
        }
    }
    command
}

pub fn summary(c: &Container) -> Value {
    let created = crate::util::parse_time(&c.created)
        .map(|t| t.timestamp())
        .unwrap_or(0);
    let command = ps_command(&c.path, &c.args);
    json!({
        "Id": c.id,
        "Names": [c.name],
        "Image": c.config.image,
        "ImageID": c.image,
        "Command": command,
        "Created": created,
        "Ports": [],
        "Labels": c.config.labels.clone().unwrap_or_default(),
        "State": c.state.status().as_str(),
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": {}},
        "Mounts": super::mounts::mounts_json(&c.mount_points),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ps_command_quotes_args_with_spaces() {
        let args = ["-c".to_string(), "echo out; exit 3".to_string()];
        assert_eq!(ps_command("sh", &args), "sh -c 'echo out; exit 3'");
        assert_eq!(ps_command("true", &[]), "true");
    }

    #[test]
    fn durations() {
        assert_eq!(
            human_duration(Duration::from_millis(200)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::from_secs(3)), "3 seconds");
        assert_eq!(human_duration(Duration::from_secs(61)), "About a minute");
        assert_eq!(human_duration(Duration::from_secs(300)), "5 minutes");
        assert_eq!(human_duration(Duration::from_secs(3600)), "About an hour");
        assert_eq!(human_duration(Duration::from_secs(3 * 86400)), "3 days");
    }
}
