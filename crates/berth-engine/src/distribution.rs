//! Pull, push and login at the engine level: references from API parameters, the
//! daemon's registry settings, events, and docker's error wording. The registry protocol
//! itself is berth-distribution.
//!
//! Pull and push are split so that the API can fail with a plain status before it starts
//! a 200 progress stream, as dockerd does: [`Engine::prepare_pull`] resolves the manifest
//! (a missing repository or tag is a 404 there), [`PreparedPull::run`] transfers;
//! [`Engine::push_targets`] checks the local tags, [`Engine::push_images`] uploads.

use crate::{Engine, EngineConfig, Error, Result};
use berth_distribution::progress::Sink;
use berth_distribution::{ClientConfig, ErrorKind as DistKind, ResolvedPull};
use berth_image::{Image, Reference};
use std::collections::BTreeMap;

pub use berth_distribution::{Credentials, ErrorKind as RegistryErrorKind, Progress};

/// The registry client for the daemon's `insecure-registries` and `registry-mirrors`.
pub(crate) fn registry_client(cfg: &EngineConfig) -> berth_distribution::Client {
    berth_distribution::Client::new(ClientConfig {
        insecure_registries: cfg.insecure_registries.clone(),
        registry_mirrors: cfg.registry_mirrors.clone(),
        max_concurrent_downloads: cfg.max_concurrent_downloads,
        max_concurrent_uploads: cfg.max_concurrent_uploads,
    })
}

/// A registry failure as an engine error; pulls get docker's wording
/// (`pull access denied for x, ...`, `manifest for x:t not found: ...`).
fn engine_error(e: berth_distribution::Error, pulling: Option<&Reference>) -> Error {
    match (e.kind(), pulling) {
        (DistKind::NotFound, Some(r)) => Error::NotFound(e.pull_message(r)),
        (DistKind::NotFound, None) => Error::NotFound(e.to_string()),
        (DistKind::InvalidArgument, _) => Error::InvalidArgument(e.to_string()),
        // not 401: the docker CLI answers a 401 from the daemon with a login prompt
        (DistKind::Unauthorized, _) => Error::Forbidden(e.to_string()),
        (DistKind::Internal, _) => Error::Internal(e.to_string()),
    }
}

fn event_attrs(r: &Reference) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("name".to_string(), r.familiar_name());
    m
}

/// A pull whose image manifest is known.
pub struct PreparedPull {
    engine: Engine,
    resolved: ResolvedPull,
}

impl PreparedPull {
    /// The normalised reference being pulled.
    pub fn reference(&self) -> &Reference {
        &self.resolved.reference
    }

    /// Transfer, register and tag the image, reporting docker's progress messages; emits
    /// the `pull` event.
    pub async fn run(self, progress: Sink<'_>) -> Result<Image> {
        let r = self.resolved.reference.clone();
        let out = self
            .resolved
            .pull(self.engine.images(), progress)
            .await
            .map_err(|e| engine_error(e, Some(&r)))?;
        self.engine
            .events()
            .emit("image", "pull", &r.familiar(), event_attrs(&r));
        Ok(out.image)
    }
}

impl Engine {
    pub fn registry(&self) -> &berth_distribution::Client {
        &self.inner.registry
    }

    /// `POST /images/create?fromImage=&tag=&platform=`, first phase: normalise the
    /// reference and resolve it to an image manifest.
    pub async fn prepare_pull(
        &self,
        from_image: &str,
        tag: Option<&str>,
        platform: Option<&str>,
        creds: Option<Credentials>,
    ) -> Result<PreparedPull> {
        let r = Reference::parse_with_tag(from_image, tag.filter(|t| !t.is_empty()))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let resolved = self
            .registry()
            .resolve(&r, platform.filter(|p| !p.is_empty()), creds)
            .await
            .map_err(|e| engine_error(e, Some(&r)))?;
        Ok(PreparedPull {
            engine: self.clone(),
            resolved,
        })
    }

    /// `POST /images/{name}/push?tag=`, first phase: the references to push. A tag (in
    /// `tag` or in `name`) pushes that one; a bare repository name pushes all its local
    /// tags, as the Engine API does.
    pub fn push_targets(&self, name: &str, tag: Option<&str>) -> Result<Vec<Reference>> {
        let named =
            Reference::parse_named(name).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if named.digest().is_some() {
            return Err(Error::InvalidArgument(format!(
                "cannot push a digest reference: {name}"
            )));
        }
        let targets = match (tag.filter(|t| !t.is_empty()), named.tag()) {
            (Some(t), _) => vec![named.with_tag(t)],
            (None, Some(_)) => vec![named.clone()],
            (None, None) => {
                let mut out = Vec::new();
                for img in self.images().list()? {
                    for t in &img.repo_tags {
                        if let Ok(r) = Reference::parse(t) {
                            if r.name() == named.name() && !out.contains(&r) {
                                out.push(r);
                            }
                        }
                    }
                }
                out.sort_by(|a, b| a.tag().cmp(&b.tag()));
                out
            }
        };
        if targets.is_empty() {
            return Err(Error::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                named.familiar_name()
            )));
        }
        for t in &targets {
            self.images().resolve(&t.full()).map_err(|_| {
                Error::NotFound(format!(
                    "An image does not exist locally with the tag: {}",
                    t.familiar()
                ))
            })?;
        }
        Ok(targets)
    }

    /// Push `targets` (from [`Engine::push_targets`]), reporting docker's progress
    /// messages; emits a `push` event per tag.
    pub async fn push_images(
        &self,
        targets: &[Reference],
        creds: Option<Credentials>,
        progress: Sink<'_>,
    ) -> Result<()> {
        let Some(first) = targets.first() else {
            return Ok(());
        };
        progress(berth_distribution::push_header(first));
        for t in targets {
            self.registry()
                .push(self.images(), &t.full(), t, creds.clone(), progress)
                .await
                .map_err(|e| engine_error(e, None))?;
            self.events()
                .emit("image", "push", &t.familiar(), event_attrs(t));
        }
        Ok(())
    }

    /// `POST /auth`: check credentials against the registry in `serveraddress` (Docker
    /// Hub when empty). The error keeps berth-distribution's kind so the API can answer
    /// refused credentials with 401.
    pub async fn registry_login(
        &self,
        creds: &Credentials,
    ) -> std::result::Result<(), berth_distribution::Error> {
        let domain = berth_distribution::auth::normalise_server(&creds.serveraddress);
        self.registry().login(&domain, creds).await
    }
}
