//! Shared harness: a registry on 127.0.0.1:<ephemeral> with a temporary root, and a small
//! hyper client returning status, headers and body.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use berth_registry::{AppState, Config};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not json ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name} in {:?}", self.headers))
            .to_str()
            .expect("header is ascii")
    }
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .expect("error code")
            .to_string()
    }
}

impl TestServer {
    pub async fn start(tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config {
            root: dir.path().join("data"),
            ..Config::default()
        };
        tune(&mut cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        cfg.addr = addr;
        let state = berth_registry::build_state(&cfg).expect("state");
        let st = state.clone();
        let task = tokio::spawn(async move {
            berth_registry::serve_state(listener, st, std::future::pending())
                .await
                .expect("serve");
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        TestServer {
            addr,
            state,
            dir,
            task,
            client,
        }
    }

    pub async fn req(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).expect("request");
        let resp = self.client.request(req).await.expect("send request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.req(Method::GET, path, &[], Bytes::new()).await
    }

    /// Monolithic upload; returns the digest string.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = berth_registry::digest::Digest::sha256_of(data).to_string();
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[("content-type", "application/octet-stream")],
                Bytes::copy_from_slice(data),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "push blob: {:?}", r.body);
        d
    }

    /// Push config + one layer + an OCI manifest under `reference`; returns the manifest
    /// digest and bytes.
    pub async fn push_image(&self, repo: &str, reference: &str, seed: &str) -> (String, Vec<u8>) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let layer = format!("layer-{seed}");
        let cd = self.push_blob(repo, config.as_bytes()).await;
        let ld = self.push_blob(repo, layer.as_bytes()).await;
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}]
        });
        let body = serde_json::to_vec_pretty(&m).expect("json");
        let r = self
            .req(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "push manifest: {:?}", r.body);
        (r.header("docker-content-digest").to_string(), body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn digest_of(data: &[u8]) -> String {
    berth_registry::digest::Digest::sha256_of(data).to_string()
}
