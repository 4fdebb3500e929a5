//! Basic auth, the bearer-token flow, per-repository permissions and read-only mode.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_registry::config::{Action, AuthMode, Permission};
use bytes::Bytes;
use common::{digest_of, TestServer};
use http::{Method, StatusCode};

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

fn perm(user: &str, repo: &str, actions: &[Action]) -> Permission {
    Permission {
        user: user.into(),
        repository: repo.into(),
        actions: actions.to_vec(),
    }
}

/// htpasswd with alice/alicepw and bob/bobpw (low bcrypt cost to keep tests quick).
fn write_htpasswd(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("htpasswd");
    let a = bcrypt::hash("alicepw", 4).expect("hash");
    let b = bcrypt::hash("bobpw", 4).expect("hash");
    std::fs::write(&p, format!("alice:{a}\nbob:{b}\n")).expect("write htpasswd");
    p
}

async fn auth_server(mode: AuthMode) -> (TestServer, tempfile::TempDir) {
    let keep = tempfile::tempdir().expect("tempdir");
    let htpasswd = write_htpasswd(keep.path());
    let s = TestServer::start(|c| {
        c.auth.htpasswd = Some(htpasswd);
        c.auth.mode = mode;
        c.auth.admins = vec!["alice".into()];
        c.auth.permissions = vec![
            perm("alice", "*", &[Action::Pull, Action::Push, Action::Delete]),
            perm("bob", "team/*", &[Action::Pull]),
            perm("anonymous", "public/*", &[Action::Pull]),
        ];
    })
    .await;
    (s, keep)
}

/// Push a one-blob "image" as alice with the given auth header.
async fn push_as(s: &TestServer, repo: &str, authz: &str) -> String {
    let data = format!("content of {repo}");
    let d = digest_of(data.as_bytes());
    let r = s
        .req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[("authorization", authz)],
            data,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 1},
        "layers": []
    }))
    .expect("json");
    let r = s
        .req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/latest"),
            &[
                ("authorization", authz),
                ("content-type", "application/vnd.oci.image.manifest.v1+json"),
            ],
            m,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.header("docker-content-digest").to_string()
}

#[tokio::test]
async fn basic_auth_and_permissions() {
    let (s, _keep) = auth_server(AuthMode::Basic).await;
    let alice = basic("alice", "alicepw");
    let bob = basic("bob", "bobpw");

    let r = s.get("/v2/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "UNAUTHORIZED");
    assert_eq!(
        r.header("www-authenticate"),
        "Basic realm=\"berth-registry\""
    );
    let r = s
        .req(
            Method::GET,
            "/v2/",
            &[("authorization", &basic("alice", "wrong"))],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = s
        .req(
            Method::GET,
            "/v2/",
            &[("authorization", &alice)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    push_as(&s, "team/app", &alice).await;
    push_as(&s, "public/tool", &alice).await;
    push_as(&s, "private/x", &alice).await;

    // bob may pull team/* but not push there, and nothing elsewhere.
    let r = s
        .req(
            Method::GET,
            "/v2/team/app/manifests/latest",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s
        .req(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "DENIED");
    let r = s
        .req(
            Method::GET,
            "/v2/private/x/tags/list",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Anonymous: public pulls only.
    assert_eq!(
        s.get("/v2/public/tool/manifests/latest").await.status,
        StatusCode::OK
    );
    let r = s.get("/v2/team/app/manifests/latest").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The catalog shows what the caller may pull.
    let r = s
        .req(
            Method::GET,
            "/v2/_catalog",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));
    let r = s
        .req(
            Method::GET,
            "/v2/_catalog",
            &[("authorization", &alice)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.json()["repositories"].as_array().expect("list").len(), 3);

    // Admin endpoint.
    let r = s
        .req(
            Method::POST,
            "/admin/gc",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .req(
            Method::POST,
            "/admin/gc?dry_run=true",
            &[("authorization", &alice)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.json()["blobs_marked"].as_u64().expect("count") >= 3);
}

async fn token(s: &TestServer, authz: Option<&str>, scope: &str) -> (StatusCode, String) {
    let path = format!(
        "/token?service=berth-registry&scope={}",
        url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>()
    );
    let headers: Vec<(&str, &str)> = authz
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let r = s.req(Method::GET, &path, &headers, Bytes::new()).await;
    let tok = if r.status == StatusCode::OK {
        let j = r.json();
        assert_eq!(j["token"], j["access_token"]);
        assert!(j["expires_in"].as_u64().expect("ttl") > 0);
        j["token"].as_str().expect("token").to_string()
    } else {
        String::new()
    };
    (r.status, tok)
}

#[tokio::test]
async fn bearer_token_flow() {
    let (s, _keep) = auth_server(AuthMode::Token).await;
    let realm = format!("http://{}/token", s.addr);

    let r = s.get("/v2/").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header("www-authenticate"),
        format!("Bearer realm=\"{realm}\",service=\"berth-registry\"")
    );
    let r = s
        .req(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        r.header("www-authenticate"),
        format!("Bearer realm=\"{realm}\",service=\"berth-registry\",scope=\"repository:team/app:pull,push\"")
    );

    // The token endpoint authenticates with basic auth.
    let (st, _) = token(
        &s,
        Some(&basic("alice", "nope")),
        "repository:team/app:pull",
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = token(&s, None, "repository:team/app:pull").await;
    assert_eq!(
        st,
        StatusCode::OK,
        "anonymous rules exist, so anonymous tokens are issued"
    );
    let (st, alice_tok) = token(
        &s,
        Some(&basic("alice", "alicepw")),
        "repository:team/app:pull,push",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let alice = format!("Bearer {alice_tok}");
    let r = s
        .req(
            Method::GET,
            "/v2/",
            &[("authorization", &alice)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    push_as(&s, "team/app", &alice).await;
    // The token is scoped: another repository needs another token.
    let r = s
        .req(
            Method::POST,
            "/v2/team/other/blobs/uploads/",
            &[("authorization", &alice)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .header("www-authenticate")
        .contains("error=\"insufficient_scope\""));

    // bob asks for pull,push and only gets pull.
    let (_, bob_tok) = token(
        &s,
        Some(&basic("bob", "bobpw")),
        "repository:team/app:pull,push",
    )
    .await;
    let bob = format!("Bearer {bob_tok}");
    let r = s
        .req(
            Method::GET,
            "/v2/team/app/manifests/latest",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s
        .req(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &bob)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").contains("insufficient_scope"));

    // A tampered token is rejected.
    let bad = format!("Bearer {}x", alice_tok);
    let r = s
        .req(
            Method::GET,
            "/v2/team/app/manifests/latest",
            &[("authorization", &bad)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").contains("invalid_token"));

    // Catalog needs the registry:catalog:* scope.
    let (_, cat) = token(&s, Some(&basic("bob", "bobpw")), "registry:catalog:*").await;
    let r = s
        .req(
            Method::GET,
            "/v2/_catalog",
            &[("authorization", &format!("Bearer {cat}"))],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));

    // OAuth2 password grant.
    let form = "grant_type=password&username=alice&password=alicepw&service=berth-registry&scope=repository%3Ateam%2Fapp%3Apull";
    let r = s
        .req(
            Method::POST,
            "/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let t = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = s
        .req(
            Method::GET,
            "/v2/team/app/tags/list",
            &[("authorization", &format!("Bearer {t}"))],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn read_only_mode() {
    let writer = TestServer::start(|_| {}).await;
    let (md, _) = writer.push_image("ro/app", "v1", "a").await;
    let root = writer.state.config.root.clone();
    let ro = TestServer::start(|c| {
        c.root = root;
        c.read_only = true;
    })
    .await;
    let r = ro.get("/v2/ro/app/manifests/v1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-content-digest"), md);
    for (m, p) in [
        (Method::POST, "/v2/ro/app/blobs/uploads/".to_string()),
        (Method::PUT, "/v2/ro/app/manifests/v2".to_string()),
        (Method::DELETE, format!("/v2/ro/app/manifests/{md}")),
        (Method::POST, "/admin/gc".to_string()),
    ] {
        let r = ro.req(m.clone(), &p, &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {p}");
        assert_eq!(r.error_code(), "UNSUPPORTED");
    }
}
