//! Serving over TLS with a given certificate and key.

use std::sync::Arc;

use berth_registry::config::TlsConfig;
use berth_registry::Config;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

#[tokio::test]
async fn serves_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_pem = ck.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).expect("write key");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = Config {
        addr,
        root: dir.path().join("data"),
        tls: Some(TlsConfig {
            cert: cert_path,
            key: key_path,
        }),
        ..Config::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(berth_registry::serve_with_shutdown(listener, cfg, async {
        let _ = stop_rx.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ck.cert.der().clone())
        .expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let tls = connector.connect(name, tcp).await.expect("tls handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let req = http::Request::get("/v2/")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("send");
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(
        resp.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"{}");

    // A plain-HTTP client gets no answer from the TLS port.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let plain = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await;
    if let Ok((mut s, c)) = plain {
        tokio::spawn(c);
        let r = s
            .send_request(
                http::Request::get("/v2/")
                    .body(Empty::new())
                    .expect("request"),
            )
            .await;
        assert!(r.is_err(), "plain http must not be served on the tls port");
    }

    stop_tx.send(()).expect("stop");
    server.await.expect("join").expect("server ends cleanly");
}
