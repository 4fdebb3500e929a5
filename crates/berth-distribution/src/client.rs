//! The HTTP side of the registry client: endpoints, schemes, authentication and the
//! handful of Distribution API calls pull and push are made of.
//!
//! Endpoints: `docker.io` is served by `registry-1.docker.io`; every other domain is used
//! as written. HTTPS is the rule. A registry is *insecure* when it is on loopback, named
//! `localhost`, or listed in `insecure-registries` (a `host[:port]` or a CIDR); as with
//! dockerd, an insecure registry is tried over HTTPS first without certificate checks and
//! falls back to plain HTTP when the TLS handshake fails. The scheme found is cached.
//!
//! Authentication follows the challenge: the first request to a registry goes out bare;
//! a 401 names the scheme (`Basic` or `Bearer realm=..,service=..,scope=..`), which is
//! remembered per endpoint so later requests authenticate up front. Bearer tokens are
//! fetched from the realm (anonymously, with basic credentials, or with an identity
//! token as an OAuth2 refresh token) and cached per realm, service, scope set and
//! credentials until shortly before they expire. A request is retried once after a 401.

use crate::auth::{parse_challenge, Challenge, Credentials};
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE,
    WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Registry settings from daemon.json.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// `insecure-registries`: `host[:port]` entries or CIDRs.
    pub insecure_registries: Vec<String>,
    /// `registry-mirrors`: URLs of Docker Hub pull-through mirrors, tried in order.
    pub registry_mirrors: Vec<String>,
    /// `max-concurrent-downloads`: layers a pull transfers at once (0: docker's 3).
    pub max_concurrent_downloads: usize,
    /// `max-concurrent-uploads`: layers a push transfers at once (0: docker's 5).
    pub max_concurrent_uploads: usize,
}

impl ClientConfig {
    /// Layers a pull transfers at once.
    pub fn downloads(&self) -> usize {
        match self.max_concurrent_downloads {
            0 => 3,
            n => n,
        }
    }

    /// Layers a push transfers at once.
    pub fn uploads(&self) -> usize {
        match self.max_concurrent_uploads {
            0 => 5,
            n => n,
        }
    }
}

/// A registry base URL (`https://registry-1.docker.io`, `http://127.0.0.1:5000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub base: String,
    /// Certificate checks are skipped (insecure registries only).
    pub insecure: bool,
}

/// The registry client. Cheap to clone; caches are shared between clones.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ClientConfig,
    secure: reqwest::Client,
    insecure: reqwest::Client,
    /// domain -> endpoint chosen for it
    endpoints: Mutex<HashMap<String, Endpoint>>,
    /// endpoint base -> its auth challenge (absent: none seen yet)
    challenges: Mutex<HashMap<String, Challenge>>,
    /// token cache key -> (token, expiry)
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

fn build_http(insecure: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(15))
        .danger_accept_invalid_certs(insecure)
        .build()
        .expect("http client configuration is valid")
}

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientConfig::default())
    }
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Client {
        Client {
            inner: Arc::new(Inner {
                cfg,
                secure: build_http(false),
                insecure: build_http(true),
                endpoints: Mutex::new(HashMap::new()),
                challenges: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    fn http(&self, ep: &Endpoint) -> &reqwest::Client {
        if ep.insecure {
            &self.inner.insecure
        } else {
            &self.inner.secure
        }
    }

    /// Whether `host[:port]` is an insecure registry.
    pub fn is_insecure(&self, host: &str) -> bool {
        let bare = strip_port(host);
        if bare.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let ip: Option<IpAddr> = bare.trim_matches(['[', ']']).parse().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.inner.cfg.insecure_registries.iter().any(|entry| {
            let entry = entry
                .trim()
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if entry.eq_ignore_ascii_case(host) || entry.eq_ignore_ascii_case(bare) {
                return true;
            }
            match (ip, parse_cidr(entry)) {
                (Some(ip), Some((net, len))) => cidr_contains(net, len, ip),
                _ => false,
            }
        })
    }

    /// Mirrors to try before Docker Hub, as endpoints.
    pub fn mirrors(&self) -> Vec<Endpoint> {
        self.inner
            .cfg
            .registry_mirrors
            .iter()
            .filter_map(|m| {
                let u = url::Url::parse(m.trim()).ok()?;
                let host = match u.port() {
                    Some(p) => format!("{}:{p}", u.host_str()?),
                    None => u.host_str()?.to_string(),
                };
                Some(Endpoint {
                    base: format!("{}://{host}", u.scheme()),
                    insecure: self.is_insecure(&host),
                })
            })
            .collect()
    }

    /// The endpoint serving `domain` (as in a reference), probing the scheme of an
    /// insecure registry once.
    pub async fn endpoint(&self, domain: &str) -> Result<Endpoint> {
        if let Some(ep) = self
            .inner
            .endpoints
            .lock()
            .expect("endpoint cache lock")
            .get(domain)
        {
            return Ok(ep.clone());
        }
        let host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        let ep = if self.is_insecure(host) {
            let https = Endpoint {
                base: format!("https://{host}"),
                insecure: true,
            };
            match self
                .http(&https)
                .get(format!("{}/v2/", https.base))
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                Ok(_) => https,
                Err(e) => {
                    tracing::debug!("{host}: https failed ({e}), falling back to http");
                    Endpoint {
                        base: format!("http://{host}"),
                        insecure: true,
                    }
                }
            }
        } else {
            Endpoint {
                base: format!("https://{host}"),
                insecure: false,
            }
        };
        self.inner
            .endpoints
            .lock()
            .expect("endpoint cache lock")
            .insert(domain.to_string(), ep.clone());
        Ok(ep)
    }

    fn challenge(&self, ep: &Endpoint) -> Option<Challenge> {
        self.inner
            .challenges
            .lock()
            .expect("challenge cache lock")
            .get(&ep.base)
            .cloned()
    }

    fn set_challenge(&self, ep: &Endpoint, c: Challenge) {
        self.inner
            .challenges
            .lock()
            .expect("challenge cache lock")
            .insert(ep.base.clone(), c);
    }

    /// `GET /v2/`: learns the endpoint's challenge; Ok for 200 and 401.
    pub async fn ping(&self, ep: &Endpoint) -> Result<Option<Challenge>> {
        let url = format!("{}/v2/", ep.base);
        let resp = self
            .http(ep)
            .get(&url)
            .send()
            .await
            .map_err(|e| transport("GET", &url, e))?;
        match resp.status() {
            StatusCode::OK => Ok(None),
            StatusCode::UNAUTHORIZED => {
                let c = challenge_of(&resp);
                if let Some(c) = &c {
                    self.set_challenge(ep, c.clone());
                }
                Ok(c)
            }
            _ => Err(registry_error(resp).await),
        }
    }

    /// Check credentials against a registry as `docker login` does: a registry without
    /// auth accepts anything; basic auth is tried on `/v2/`; a token service must issue a
    /// token for them.
    pub async fn login(&self, domain: &str, creds: &Credentials) -> Result<()> {
        let ep = self.endpoint(domain).await?;
        let url = format!("{}/v2/", ep.base);
        match self.ping(&ep).await? {
            None => Ok(()),
            Some(Challenge::Basic { .. }) => {
                let mut rb = self.http(&ep).get(&url);
                if let Some(h) = creds.basic_header() {
                    rb = rb.header(AUTHORIZATION, h);
                }
                let resp = rb.send().await.map_err(|e| transport("GET", &url, e))?;
                match resp.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        Err(Error::Unauthorized(format!(
                            "login attempt to {url} failed with status: {}",
                            status_text(resp.status())
                        )))
                    }
                    _ => Err(registry_error(resp).await),
                }
            }
            Some(Challenge::Bearer { realm, service, .. }) => self
                .fetch_token(&realm, service.as_deref(), &[], Some(creds))
                .await
                .map(|_| ()),
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<String> {
        let key = format!(
            "{realm}|{}|{}|{}",
            service.unwrap_or(""),
            scopes.join(" "),
            creds.map(Credentials::cache_key).unwrap_or_default()
        );
        if let Some((t, exp)) = self
            .inner
            .tokens
            .lock()
            .expect("token cache lock")
            .get(&key)
        {
            if *exp > Instant::now() {
                return Ok(t.clone());
            }
        }
        let realm_url = url::Url::parse(realm)
            .map_err(|e| Error::Protocol(format!("invalid token realm {realm:?}: {e}")))?;
        // The token service may be another host; it gets certificate checks unless it is
        // itself an insecure registry host.
        let host = realm_url.host_str().unwrap_or_default().to_string();
        let host = match realm_url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let http = if self.is_insecure(&host) {
            &self.inner.insecure
        } else {
            &self.inner.secure
        };
        let refresh = creds
            .map(|c| c.identitytoken.as_str())
            .filter(|t| !t.is_empty());
        let rb = if let Some(refresh) = refresh {
            let mut form = vec![
                ("grant_type", "refresh_token".to_string()),
                ("refresh_token", refresh.to_string()),
                ("client_id", "berth".to_string()),
            ];
            if let Some(s) = service {
                form.push(("service", s.to_string()));
            }
            if !scopes.is_empty() {
                form.push(("scope", scopes.join(" ")));
            }
            http.post(realm_url.clone()).form(&form)
        } else {
            let mut u = realm_url.clone();
            {
                let mut q = u.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
            }
            let mut rb = http.get(u);
            if let Some(h) = creds.and_then(Credentials::basic_header) {
                rb = rb.header(AUTHORIZATION, h);
            }
            rb
        };
        let resp = rb.send().await.map_err(|e| transport("GET", realm, e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let err = registry_error(resp).await;
            if creds.is_none() {
                // anonymous access refused: to a pull this reads as "access denied",
                // not as bad credentials
                return Err(err);
            }
            let detail = match &err {
                Error::Registry { message, code, .. } if !message.is_empty() => {
                    format!(
                        "{}: {message}",
                        code.as_deref().unwrap_or("unauthorized").to_lowercase()
                    )
                }
                _ => "unauthorized: authentication required".to_string(),
            };
            return Err(Error::Unauthorized(format!("Get \"{realm}\": {detail}")));
        }
        if !status.is_success() {
            return Err(registry_error(resp).await);
        }
        #[derive(serde::Deserialize)]
        struct TokenReply {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
            #[serde(default)]
            expires_in: u64,
        }
        let body = read_limited(resp, 1 << 20).await?;
        let t: TokenReply = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("invalid token reply from {realm}: {e}")))?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(Error::Protocol(format!(
                "token reply from {realm} has no token"
            )));
        }
        // the spec's default lifetime is 60 s; renew 10 s early
        let ttl = Duration::from_secs(t.expires_in.max(60).saturating_sub(10));
        self.inner
            .tokens
            .lock()
            .expect("token cache lock")
            .insert(key, (token.clone(), Instant::now() + ttl));
        Ok(token)
    }

    /// The client for one repository on one endpoint.
    pub fn repository(
        &self,
        ep: Endpoint,
        name: &str,
        creds: Option<Credentials>,
        push: bool,
    ) -> Repository {
        let actions = if push { "pull,push" } else { "pull" };
        Repository {
            client: self.clone(),
            ep,
            name: name.to_string(),
            creds,
            scopes: Mutex::new(vec![format!("repository:{name}:{actions}")]),
        }
    }
}

/// Calls on one repository, authenticated with its credentials and scopes.
pub struct Repository {
    client: Client,
    pub ep: Endpoint,
    /// The repository path in the registry (`library/busybox`).
    pub name: String,
    creds: Option<Credentials>,
    scopes: Mutex<Vec<String>>,
}

/// The outcome of a cross-repository mount attempt.
pub enum MountOutcome {
    Mounted,
    /// The registry started a regular upload instead; its location.
    Upload(String),
}

impl Repository {
    /// The client this repository's calls go through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ask for pull access to another repository too (the source of a mount).
    pub fn add_scope(&self, scope: String) {
        let mut s = self.scopes.lock().expect("scope lock");
        if !s.contains(&scope) {
            s.push(scope);
        }
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes.lock().expect("scope lock").clone()
    }

    async fn authorization(&self) -> Result<Option<String>> {
        if let Some(t) = self
            .creds
            .as_ref()
            .map(|c| c.registrytoken.as_str())
            .filter(|t| !t.is_empty())
        {
            return Ok(Some(format!("Bearer {t}")));
        }
        match self.client.challenge(&self.ep) {
            None => Ok(None),
            Some(Challenge::Basic { .. }) => {
                Ok(self.creds.as_ref().and_then(Credentials::basic_header))
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let t = self
                    .client
                    .fetch_token(
                        &realm,
                        service.as_deref(),
                        &self.scopes(),
                        self.creds.as_ref(),
                    )
                    .await?;
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }

    /// Send a request built by `build` (called again for the retry after a 401, so a
    /// streamed body is rebuilt from its source).
    pub async fn send(
        &self,
        build: &(dyn Fn(&reqwest::Client) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let http = self.client.http(&self.ep);
        let mut retried = false;
        loop {
            let mut rb = build(http);
            if let Some(h) = self.authorization().await? {
                rb = rb.header(AUTHORIZATION, h);
            }
            let req = rb
                .build()
                .map_err(|e| Error::Protocol(format!("building request: {e}")))?;
            let (method, url) = (req.method().to_string(), req.url().to_string());
            let resp = http
                .execute(req)
                .await
                .map_err(|e| transport(&method, &url, e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !retried {
                if let Some(c) = challenge_of(&resp) {
                    let known = self.client.challenge(&self.ep);
                    // a retry only helps if the next attempt authenticates differently: a
                    // token for the scope the challenge names, or basic credentials that
                    // were not sent the first time
                    let worth_retry = match &c {
                        Challenge::Bearer { scope, .. } => {
                            for one in scope.iter().flat_map(|s| s.split(' ')) {
                                self.add_scope(one.to_string());
                            }
                            true
                        }
                        Challenge::Basic { .. } => {
                            !matches!(known, Some(Challenge::Basic { .. }))
                                && self.creds.as_ref().is_some_and(|c| !c.username.is_empty())
                        }
                    };
                    self.client.set_challenge(&self.ep, c);
                    if worth_retry {
                        retried = true;
                        continue;
                    }
                }
            }
            return Ok(resp);
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.ep.base, self.name)
    }

    /// GET a manifest by tag or digest: its bytes, media type and digest (computed over
    /// the bytes; checked against `reference` when that is a digest).
    pub async fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String, String)> {
        let url = self.url(&format!("manifests/{reference}"));
        let resp = self
            .send(&|h: &reqwest::Client| h.get(&url).header(ACCEPT, manifest::ACCEPT))
            .await?;
        if !resp.status().is_success() {
            return Err(registry_error(resp).await);
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = read_limited(resp, manifest::MAX_MANIFEST_BYTES).await?;
        let digest = berth_image::digest::sha256_digest(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(Error::Protocol(format!(
                "manifest {reference} from {url} has digest {digest}"
            )));
        }
        let mt = match Manifest::parse(&ct, &bytes)? {
            Manifest::Index(_) if ct.is_empty() || ct.starts_with("application/json") => {
                manifest::OCI_INDEX.to_string()
            }
            Manifest::Image(m) if ct.is_empty() || ct.starts_with("application/json") => {
                if m.media_type.is_empty() {
                    manifest::OCI_MANIFEST.to_string()
                } else {
                    m.media_type
                }
            }
            _ => ct.split(';').next().unwrap_or("").trim().to_string(),
        };
        Ok((bytes, mt, digest))
    }

    /// PUT a manifest under `reference` (tag or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String> {
        let url = self.url(&format!("manifests/{reference}"));
        let body = Bytes::copy_from_slice(bytes);
        let resp = self
            .send(&|h: &reqwest::Client| {
                h.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(registry_error(resp).await);
        }
        let digest = berth_image::digest::sha256_digest(bytes);
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if d != digest {
                return Err(Error::Protocol(format!(
                    "registry stored manifest {url} as {d}, expected {digest}"
                )));
            }
        }
        Ok(digest)
    }

    /// HEAD a blob: its size when the registry has it.
    pub async fn blob_exists(&self, digest: &str) -> Result<Option<u64>> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.send(&|h: &reqwest::Client| h.head(&url)).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(registry_error(resp).await),
        }
    }

    /// GET a blob (redirects to storage backends are followed).
    pub async fn get_blob(&self, digest: &str) -> Result<Response> {
        self.get_blob_from(digest, 0).await
    }

    /// GET a blob from byte `offset` on (`Range: bytes=offset-` when not 0). A registry
    /// may ignore the range and answer 200 with the whole blob: the caller checks
    /// [`range_start`].
    pub async fn get_blob_from(&self, digest: &str, offset: u64) -> Result<Response> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self
            .send(&|h: &reqwest::Client| {
                let rb = h.get(&url);
                if offset > 0 {
                    rb.header(RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(registry_error(resp).await);
        }
        Ok(resp)
    }

    /// Try to mount `digest` from repository `from` on the same registry.
    pub async fn mount_blob(&self, digest: &str, from: &str) -> Result<MountOutcome> {
        self.add_scope(format!("repository:{from}:pull"));
        let url = format!(
            "{}?mount={digest}&from={}",
            self.url("blobs/uploads/"),
            url::form_urlencoded::byte_serialize(from.as_bytes()).collect::<String>()
        );
        let resp = self
            .send(&|h: &reqwest::Client| h.post(&url).header(CONTENT_LENGTH, "0"))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => Ok(MountOutcome::Upload(self.location(&resp)?)),
            _ => Err(registry_error(resp).await),
        }
    }

    /// Start an upload session; returns its absolute location.
    pub async fn start_upload(&self) -> Result<String> {
        let url = self.url("blobs/uploads/");
        let resp = self
            .send(&|h: &reqwest::Client| h.post(&url).header(CONTENT_LENGTH, "0"))
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(registry_error(resp).await);
        }
        self.location(&resp)
    }

    fn location(&self, resp: &Response) -> Result<String> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::Protocol(format!("upload reply from {} has no Location", resp.url()))
            })?;
        let base = url::Url::parse(&self.ep.base)
            .map_err(|e| Error::Protocol(format!("invalid endpoint {}: {e}", self.ep.base)))?;
        base.join(loc)
            .map(|u| u.to_string())
            .map_err(|e| Error::Protocol(format!("invalid upload location {loc:?}: {e}")))
    }

    /// Send a whole blob as one streamed `PATCH` to an upload (no `Content-Range`, no
    /// length: for bodies produced on the fly, like a layer being compressed). `body` is
    /// called for each attempt (again after a 401). Returns the location for the next
    /// request of the upload.
    pub async fn patch_upload(
        &self,
        location: &str,
        body: &(dyn Fn() -> reqwest::Body + Sync),
    ) -> Result<String> {
        let resp = self
            .send(&|h: &reqwest::Client| {
                h.patch(location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body())
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(registry_error(resp).await);
        }
        self.location(&resp)
    }

    /// Close an upload whose bytes were all sent: `PUT location?digest=` without a body.
    pub async fn finish_upload(&self, location: &str, digest: &str) -> Result<()> {
        let mut u = url::Url::parse(location)
            .map_err(|e| Error::Protocol(format!("invalid upload location {location:?}: {e}")))?;
        u.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .send(&|h: &reqwest::Client| h.put(u.clone()).header(CONTENT_LENGTH, "0"))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(registry_error(resp).await);
        }
        Ok(())
    }

    /// Finish an upload monolithically: PUT the whole file at `location?digest=`,
    /// streamed from disk. `sent` counts the bytes handed to the connection.
    pub async fn put_blob_file(
        &self,
        location: &str,
        digest: &str,
        path: &std::path::Path,
        size: u64,
        sent: Arc<AtomicU64>,
    ) -> Result<()> {
        let mut u = url::Url::parse(location)
            .map_err(|e| Error::Protocol(format!("invalid upload location {location:?}: {e}")))?;
        u.query_pairs_mut().append_pair("digest", digest);
        // open once up front so that a missing file is reported as such
        std::fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        let path = path.to_path_buf();
        let resp = self
            .send(&|h: &reqwest::Client| {
                sent.store(0, Ordering::Relaxed);
                let body = match std::fs::File::open(&path) {
                    Ok(f) => {
                        let counter = sent.clone();
                        let stream =
                            tokio_util_reader(tokio::fs::File::from_std(f)).map(move |r| {
                                if let Ok(b) = &r {
                                    counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                                }
                                r
                            });
                        reqwest::Body::wrap_stream(stream)
                    }
                    // surfaces as a transport error of the PUT
                    Err(e) => reqwest::Body::wrap_stream(futures_util::stream::once(async move {
                        Err::<Bytes, std::io::Error>(e)
                    })),
                };
                h.put(u.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body)
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(registry_error(resp).await);
        }
        Ok(())
    }
}

/// A file as a stream of chunks (what `tokio_util::io::ReaderStream` does, without the
/// dependency).
fn tokio_util_reader(
    f: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(f), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// The offset of the first byte of a blob GET reply: the start of its `Content-Range`
/// for a 206, 0 for a 200 (the whole blob).
pub fn range_start(resp: &Response) -> Result<u64> {
    if resp.status() != StatusCode::PARTIAL_CONTENT {
        return Ok(0);
    }
    let v = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    v.strip_prefix("bytes ")
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| {
            Error::Protocol(format!(
                "partial reply from {} has an invalid Content-Range {v:?}",
                resp.url()
            ))
        })
}

fn challenge_of(resp: &Response) -> Option<Challenge> {
    resp.headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        // prefer Bearer when both are offered
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

fn status_text(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

pub(crate) fn transport(method: &str, url: &str, source: reqwest::Error) -> Error {
    Error::Transport {
        method: method.to_string(),
        url: url.to_string(),
        source,
    }
}

/// Read a body of at most `limit` bytes.
pub(crate) async fn read_limited(resp: Response, limit: usize) -> Result<Vec<u8>> {
    let url = resp.url().to_string();
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| transport("GET", &url, e))?;
        if out.len() + chunk.len() > limit {
            return Err(Error::Protocol(format!(
                "reply from {url} exceeds {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Turn an error reply into [`Error::Registry`], keeping the first OCI error code.
pub(crate) async fn registry_error(resp: Response) -> Error {
    let status = resp.status().as_u16();
    let url = resp.url().to_string();
    let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct One {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<One>,
    }
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let first = &e.errors[0];
            Error::Registry {
                url,
                status,
                code: (!first.code.is_empty()).then(|| first.code.clone()),
                message: first.message.clone(),
            }
        }
        _ => {
            // HEAD replies and plain-text errors carry no body code; derive the usual one
            let code = match status {
                401 => Some("UNAUTHORIZED"),
                403 => Some("DENIED"),
                _ => None,
            };
            let message = match code {
                Some("UNAUTHORIZED") => "authentication required".to_string(),
                Some(_) => "requested access to the resource is denied".to_string(),
                None => String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
            };
            Error::Registry {
                url,
                status,
                code: code.map(str::to_string),
                message,
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok()?))
}

fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_rules() {
        let c = Client::new(ClientConfig {
            insecure_registries: vec![
                "myreg:5000".into(),
                "10.1.0.0/16".into(),
                "plain.example".into(),
            ],
            registry_mirrors: vec!["http://127.0.0.1:5001/".into(), "not a url".into()],
            ..ClientConfig::default()
        });
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(c.is_insecure("myreg:5000"));
        assert!(!c.is_insecure("myreg:5001"));
        assert!(c.is_insecure("plain.example:443"));
        assert!(c.is_insecure("10.1.2.3:5000"));
        assert!(!c.is_insecure("10.2.0.1"));
        assert!(!c.is_insecure("registry-1.docker.io"));
        assert_eq!(
            c.mirrors(),
            vec![Endpoint {
                base: "http://127.0.0.1:5001".into(),
                insecure: true
            }]
        );
    }
}
