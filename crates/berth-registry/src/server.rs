//! Running the registry: building its state from a [`Config`], serving plain HTTP or TLS
//! on a listener, and the background task that purges expired uploads.
//!
//! TLS uses tokio-rustls with the `ring` provider (no aws-lc build) and hyper-util's auto
//! connection builder, so HTTP/1.1 and HTTP/2 (ALPN) both work; the plain path is
//! `axum::serve`. Both stop accepting on the shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::auth::{Auth, AuthError};
use crate::config::Config;
use crate::http::{router, AppState};
use crate::registry::{Registry, RegistryOptions};
use crate::storage::{FsStorage, StorageError};

/// Errors from starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening storage: {0}")]
    Storage(#[from] StorageError),
    #[error("loading auth: {0}")]
    Auth(#[from] AuthError),
    #[error("loading tls {what} from {path}: {message}")]
    Tls {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Build the shared state (storage on `cfg.root`, auth) for [`router`].
pub fn build_state(cfg: &Config) -> Result<Arc<AppState>, ServeError> {
    let storage = FsStorage::open(&cfg.root)?;
    let registry = Registry::new(
        Arc::new(storage),
        RegistryOptions {
            delete_enabled: cfg.delete_enabled,
            manifest_max_bytes: cfg.manifest_max_bytes,
        },
    );
    let auth = Auth::new(cfg.auth.clone())?;
    Ok(Arc::new(AppState {
        registry: Arc::new(registry),
        auth: Arc::new(auth),
        config: cfg.clone(),
    }))
}

/// Serve until the process ends.
pub async fn serve(listener: TcpListener, cfg: Config) -> Result<(), ServeError> {
    serve_with_shutdown(listener, cfg, std::future::pending()).await
}

/// Serve until `shutdown` completes.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = build_state(&cfg)?;
    serve_state(listener, state, shutdown).await
}

/// Serve prepared state (lets tests keep a handle on the registry).
pub async fn serve_state(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let purge = tokio::spawn(purge_loop(state.clone()));
    let app = router(state.clone());
    let result = match &state.config.tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::from),
        Some(tls) => {
            let acceptor = tls_acceptor(&tls.cert, &tls.key)?;
            serve_tls(listener, app, acceptor, shutdown).await
        }
    };
    purge.abort();
    result
}

async fn purge_loop(state: Arc<AppState>) {
    let every = Duration::from_secs(state.config.upload_purge_interval_secs.max(1));
    let expiry = state.config.upload_expiry();
    loop {
        if !state.config.read_only {
            match state.registry.purge_expired_uploads(expiry).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "removed expired uploads"),
                Err(e) => tracing::warn!(error = %e, "purging expired uploads"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// A TLS acceptor from PEM files (certificate chain and PKCS#8, PKCS#1 or SEC1 key).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let err = |what, path: &Path, message: String| ServeError::Tls {
        what,
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err("certificate", cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err("certificate", cert, "no certificate found".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err("key", key, e.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("certificate", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err("key", key, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve_tls(
    listener: TcpListener,
    app: axum::Router,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer): (_, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Accept errors (EMFILE, a reset before accept) are per-connection.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "tls handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
