//! Convenience methods per Engine API resource, returning `serde_json::Value` (the daemon's
//! own field names) so callers are not tied to a model crate. Paths, query parameters and
//! the few typed answers (ids, exit codes) live here so that the CLI and compose build
//! requests the same way.

use serde_json::{json, Value};

use crate::error::Result;
use crate::stream::{Hijacked, JsonStream, Response};
use crate::{empty_body, query, with_query, Client};

/// What to attach to (`POST /containers/{id}/attach`).
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Also replay the logs so far.
    pub logs: bool,
    pub detach_keys: Option<String>,
}

/// `GET /containers/{id}/logs` parameters.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub follow: bool,
    pub timestamps: bool,
    pub details: bool,
    /// `all` or a number.
    pub tail: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

fn b(v: bool) -> &'static str {
    if v {
        "1"
    } else {
        "0"
    }
}

/// Percent-encode one path segment (ids and names are safe, but image references with a
/// registry port or digest are not).
fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2F", "/")
        .replace("%3A", ":")
        .replace("%2E", ".")
        .replace("%2D", "-")
        .replace("%5F", "_")
        .replace("%40", "@")
}

impl Client {
    /// `GET /version`.
    pub async fn version(&self) -> Result<Value> {
        self.get_json("/version").await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<Value> {
        self.get_json("/info").await
    }

    /// `POST /containers/create`; returns the new id.
    pub async fn container_create(
        &self,
        name: Option<&str>,
        platform: Option<&str>,
        body: &Value,
    ) -> Result<String> {
        let mut q = Vec::new();
        if let Some(n) = name {
            q.push(("name", n));
        }
        if let Some(p) = platform {
            q.push(("platform", p));
        }
        let v = self
            .post_json(&with_query("/containers/create", &query(&q)), Some(body))
            .await?;
        Ok(v.get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// `GET /containers/json`.
    pub async fn container_list(
        &self,
        all: bool,
        limit: Option<i64>,
        size: bool,
        filters: &Value,
    ) -> Result<Vec<Value>> {
        let lim = limit.map(|l| l.to_string());
        let f = filters.to_string();
        let mut q = vec![("all", b(all))];
        if let Some(l) = lim.as_deref() {
            q.push(("limit", l));
        }
        if size {
            q.push(("size", "1"));
        }
        if filters.as_object().is_some_and(|o| !o.is_empty()) {
            q.push(("filters", &f));
        }
        let v = self
            .get_json(&with_query("/containers/json", &query(&q)))
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `GET /containers/{id}/json`.
    pub async fn container_inspect(&self, id: &str, size: bool) -> Result<Value> {
        let q = if size { "?size=1" } else { "" };
        self.get_json(&format!("/containers/{}/json{q}", seg(id)))
            .await
    }

    /// `GET /containers/{id}/json` as raw bytes, for docker's byte-preserving inspect output.
    pub async fn container_inspect_raw(&self, id: &str, size: bool) -> Result<bytes::Bytes> {
        let q = if size { "?size=1" } else { "" };
        self.request(
            http::Method::GET,
            &format!("/containers/{}/json{q}", seg(id)),
            empty_body(),
            &[],
        )
        .await?
        .bytes()
        .await
    }

    /// `POST /containers/{id}/start`.
    pub async fn container_start(&self, id: &str) -> Result<()> {
        self.post_json(&format!("/containers/{}/start", seg(id)), None)
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/stop`.
    pub async fn container_stop(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let t = timeout.map(|t| t.to_string());
        let mut q = Vec::new();
        if let Some(t) = t.as_deref() {
            q.push(("t", t));
        }
        if let Some(s) = signal {
            q.push(("signal", s));
        }
        self.post_json(
            &with_query(&format!("/containers/{}/stop", seg(id)), &query(&q)),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /containers/{id}/restart`.
    pub async fn container_restart(
        &self,
        id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let t = timeout.map(|t| t.to_string());
        let mut q = Vec::new();
        if let Some(t) = t.as_deref() {
            q.push(("t", t));
        }
        if let Some(s) = signal {
            q.push(("signal", s));
        }
        self.post_json(
            &with_query(&format!("/containers/{}/restart", seg(id)), &query(&q)),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /containers/{id}/kill`.
    pub async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let q = signal.map(|s| query(&[("signal", s)])).unwrap_or_default();
        self.post_json(
            &with_query(&format!("/containers/{}/kill", seg(id)), &q),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /containers/{id}/pause` or `/unpause`.
    pub async fn container_pause(&self, id: &str, pause: bool) -> Result<()> {
        let verb = if pause { "pause" } else { "unpause" };
        self.post_json(&format!("/containers/{}/{verb}", seg(id)), None)
            .await
            .map(drop)
    }

    /// `DELETE /containers/{id}`.
    pub async fn container_remove(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let q = query(&[("force", b(force)), ("v", b(volumes))]);
        self.delete(&format!("/containers/{}?{q}", seg(id)))
            .await
            .map(drop)
    }

    /// `POST /containers/{id}/rename`.
    pub async fn container_rename(&self, id: &str, name: &str) -> Result<()> {
        self.post_json(
            &format!(
                "/containers/{}/rename?{}",
                seg(id),
                query(&[("name", name)])
            ),
            None,
        )
        .await
        .map(drop)
    }

    /// `POST /containers/{id}/update`; returns the daemon's answer (warnings).
    pub async fn container_update(&self, id: &str, body: &Value) -> Result<Value> {
        self.post_json(&format!("/containers/{}/update", seg(id)), Some(body))
            .await
    }

    /// Start `POST /containers/{id}/wait` and return the pending response; read it with
    /// [`wait_exit_code`]. Split in two so that `run` can register the wait before `start`.
    pub async fn container_wait_begin(&self, id: &str, condition: &str) -> Result<Response> {
        self.request(
            http::Method::POST,
            &format!(
                "/containers/{}/wait?{}",
                seg(id),
                query(&[("condition", condition)])
            ),
            empty_body(),
            &[],
        )
        .await
    }

    /// Wait for the container and return its exit code.
    pub async fn container_wait(&self, id: &str, condition: &str) -> Result<i64> {
        let r = self.container_wait_begin(id, condition).await?;
        wait_exit_code(r).await
    }

    /// `POST /containers/{id}/attach` hijacked.
    pub async fn container_attach(&self, id: &str, o: &AttachOptions) -> Result<Hijacked> {
        let mut q = vec![
            ("stream", "1"),
            ("stdin", b(o.stdin)),
            ("stdout", b(o.stdout)),
            ("stderr", b(o.stderr)),
        ];
        if o.logs {
            q.push(("logs", "1"));
        }
        if let Some(k) = o.detach_keys.as_deref() {
            q.push(("detachKeys", k));
        }
        self.hijack(
            &format!("/containers/{}/attach?{}", seg(id), query(&q)),
            None,
        )
        .await
    }

    /// `POST /containers/{id}/resize`.
    pub async fn container_resize(&self, id: &str, h: u16, w: u16) -> Result<()> {
        let (h, w) = (h.to_string(), w.to_string());
        self.post_json(
            &format!(
                "/containers/{}/resize?{}",
                seg(id),
                query(&[("h", &h), ("w", &w)])
            ),
            None,
        )
        .await
        .map(drop)
    }

    /// `GET /containers/{id}/logs` as a streaming response (multiplexed unless TTY).
    pub async fn container_logs(&self, id: &str, o: &LogsOptions) -> Result<Response> {
        let mut q = vec![
            ("stdout", "1"),
            ("stderr", "1"),
            ("follow", b(o.follow)),
            ("timestamps", b(o.timestamps)),
        ];
        if o.details {
            q.push(("details", "1"));
        }
        if let Some(t) = o.tail.as_deref() {
            q.push(("tail", t));
        }
        if let Some(s) = o.since.as_deref() {
            q.push(("since", s));
        }
        if let Some(u) = o.until.as_deref() {
            q.push(("until", u));
        }
        self.request(
            http::Method::GET,
            &format!("/containers/{}/logs?{}", seg(id), query(&q)),
            empty_body(),
            // berthd then sends a run of lines as one frame (a daemon that does not know
            // the header sends a frame per line; the demultiplexer takes both).
            &[("X-Berth-Merge-Frames", "1")],
        )
        .await
    }

    /// `POST /containers/{id}/exec`; returns the exec id.
    pub async fn exec_create(&self, id: &str, body: &Value) -> Result<String> {
        let v = self
            .post_json(&format!("/containers/{}/exec", seg(id)), Some(body))
            .await?;
        Ok(v.get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// `POST /exec/{id}/start` hijacked (attached exec).
    pub async fn exec_start_attached(&self, exec_id: &str, tty: bool) -> Result<Hijacked> {
        self.hijack(
            &format!("/exec/{}/start", seg(exec_id)),
            Some(&json!({"Detach": false, "Tty": tty})),
        )
        .await
    }

    /// `POST /exec/{id}/start` detached.
    pub async fn exec_start_detached(&self, exec_id: &str) -> Result<()> {
        self.post_json(
            &format!("/exec/{}/start", seg(exec_id)),
            Some(&json!({"Detach": true, "Tty": false})),
        )
        .await
        .map(drop)
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<Value> {
        self.get_json(&format!("/exec/{}/json", seg(exec_id))).await
    }

    /// `POST /exec/{id}/resize`.
    pub async fn exec_resize(&self, exec_id: &str, h: u16, w: u16) -> Result<()> {
        let (h, w) = (h.to_string(), w.to_string());
        self.post_json(
            &format!(
                "/exec/{}/resize?{}",
                seg(exec_id),
                query(&[("h", &h), ("w", &w)])
            ),
            None,
        )
        .await
        .map(drop)
    }

    /// `GET /images/json`.
    pub async fn image_list(
        &self,
        all: bool,
        digests: bool,
        filters: &Value,
    ) -> Result<Vec<Value>> {
        let f = filters.to_string();
        let mut q = vec![("all", b(all))];
        if digests {
            q.push(("digests", "1"));
        }
        if filters.as_object().is_some_and(|o| !o.is_empty()) {
            q.push(("filters", &f));
        }
        let v = self
            .get_json(&with_query("/images/json", &query(&q)))
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `GET /images/{name}/json`.
    pub async fn image_inspect(&self, name: &str) -> Result<Value> {
        self.get_json(&format!("/images/{}/json", seg(name))).await
    }

    /// `POST /images/create?fromImage=&tag=` as a progress stream. `auth` is the base64
    /// X-Registry-Auth value when there is one.
    pub async fn image_pull(
        &self,
        image: &str,
        tag: Option<&str>,
        platform: Option<&str>,
        auth: Option<&str>,
    ) -> Result<JsonStream> {
        let mut q = vec![("fromImage", image)];
        if let Some(t) = tag {
            q.push(("tag", t));
        }
        if let Some(p) = platform {
            q.push(("platform", p));
        }
        let headers: Vec<(&str, &str)> = auth
            .map(|a| vec![("x-registry-auth", a)])
            .unwrap_or_default();
        Ok(self
            .request(
                http::Method::POST,
                &format!("/images/create?{}", query(&q)),
                empty_body(),
                &headers,
            )
            .await?
            .json_stream())
    }

    /// `DELETE /images/{name}`; returns the list of untagged/deleted entries.
    pub async fn image_remove(&self, name: &str, force: bool, noprune: bool) -> Result<Vec<Value>> {
        let q = query(&[("force", b(force)), ("noprune", b(noprune))]);
        let v = self.delete(&format!("/images/{}?{q}", seg(name))).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `POST /images/{name}/tag`.
    pub async fn image_tag(&self, name: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let mut q = vec![("repo", repo)];
        if let Some(t) = tag {
            q.push(("tag", t));
        }
        self.post_json(&format!("/images/{}/tag?{}", seg(name), query(&q)), None)
            .await
            .map(drop)
    }

    /// `GET /networks/{id}`.
    pub async fn network_inspect(&self, id: &str) -> Result<Value> {
        self.get_json(&format!("/networks/{}", seg(id))).await
    }

    /// `POST /networks/create`; returns the answer (`Id`, `Warning`).
    pub async fn network_create(&self, body: &Value) -> Result<Value> {
        self.post_json("/networks/create", Some(body)).await
    }

    /// `DELETE /networks/{id}`.
    pub async fn network_remove(&self, id: &str) -> Result<()> {
        self.delete(&format!("/networks/{}", seg(id)))
            .await
            .map(drop)
    }

    /// `POST /networks/{id}/connect`.
    pub async fn network_connect(&self, id: &str, body: &Value) -> Result<()> {
        self.post_json(&format!("/networks/{}/connect", seg(id)), Some(body))
            .await
            .map(drop)
    }

    /// `GET /volumes/{name}`.
    pub async fn volume_inspect(&self, name: &str) -> Result<Value> {
        self.get_json(&format!("/volumes/{}", seg(name))).await
    }

    /// `POST /volumes/create`.
    pub async fn volume_create(&self, body: &Value) -> Result<Value> {
        self.post_json("/volumes/create", Some(body)).await
    }

    /// `DELETE /volumes/{name}`.
    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.delete(&format!("/volumes/{}?force={}", seg(name), b(force)))
            .await
            .map(drop)
    }

    /// `GET /events` as a JSON stream.
    pub async fn events(
        &self,
        filters: &Value,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<JsonStream> {
        let f = filters.to_string();
        let mut q = Vec::new();
        if filters.as_object().is_some_and(|o| !o.is_empty()) {
            q.push(("filters", f.as_str()));
        }
        if let Some(s) = since {
            q.push(("since", s));
        }
        if let Some(u) = until {
            q.push(("until", u));
        }
        Ok(self
            .request(
                http::Method::GET,
                &with_query("/events", &query(&q)),
                empty_body(),
                &[],
            )
            .await?
            .json_stream())
    }
}

/// Read the answer of `POST /containers/{id}/wait`: its `StatusCode`, or an error when the
/// daemon reported one in `Error.Message`.
pub async fn wait_exit_code(r: Response) -> Result<i64> {
    let v = r.json().await?;
    if let Some(m) = v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        return Err(crate::Error::Api {
            status: 500,
            message: m.to_string(),
        });
    }
    Ok(v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::seg;

    #[test]
    fn segments_keep_reference_syntax() {
        assert_eq!(seg("localhost:5000/a/b:1.0"), "localhost:5000/a/b:1.0");
        assert_eq!(seg("a b"), "a%20b");
        assert_eq!(seg("img@sha256:ab"), "img@sha256:ab");
    }
}
