//! Image operations at the engine level: the parts that know about containers (rmi
//! conflicts, prune roots) and the Engine API's JSON shapes. Storage itself is berth-image.

use crate::filters::Filters;
use crate::{Engine, Error, Result};
use berth_image::{Image, ImportOptions, Reference};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};

fn short(id: &str) -> &str {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    &h[..12.min(h.len())]
}

fn unix_created(img: &Image) -> i64 {
    crate::util::parse_time(&img.created)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// dockerd names the missing reference normalised with its default tag
/// ("No such image: busybox:latest"); an id stays as given.
fn no_such_image(name: &str) -> Error {
    let shown = Reference::parse(name)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| name.to_string());
    Error::NotFound(format!("No such image: {shown}"))
}

fn parse_ref(s: &str) -> Result<Reference> {
    Reference::parse(s).map_err(|e| Error::InvalidArgument(e.to_string()))
}

impl Engine {
    fn image_attrs(&self, name: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("name".to_string(), name.to_string());
        m
    }

    /// `POST /images/create?fromSrc=-`: a rootfs tarball becomes a one-layer image.
    pub fn import_image(
        &self,
        src: &mut dyn Read,
        repo: Option<&str>,
        tag: Option<&str>,
        changes: Vec<String>,
        message: Option<String>,
        platform: Option<String>,
    ) -> Result<Image> {
        let reference = match repo.filter(|r| !r.is_empty()) {
            Some(r) => Some(
                Reference::parse_with_tag(r, tag.filter(|t| !t.is_empty()))
                    .map_err(|e| Error::InvalidArgument(e.to_string()))?,
            ),
            None => None,
        };
        let img = self.images().import(
            src,
            ImportOptions {
                reference: reference.clone(),
                changes,
                message,
                platform,
            },
        )?;
        self.events()
            .emit("image", "import", &img.id, self.image_attrs(&img.id));
        if let Some(r) = reference {
            self.events()
                .emit("image", "tag", &img.id, self.image_attrs(&r.familiar()));
        }
        Ok(img)
    }

    pub fn load_images(&self, src: &mut dyn Read) -> Result<Vec<berth_image::LoadedImage>> {
        let loaded = self.images().load(src)?;
        for l in &loaded {
            self.events()
                .emit("image", "load", &l.id, self.image_attrs(&l.id));
        }
        Ok(loaded)
    }

    pub fn save_images(&self, names: &[String], out: &mut dyn Write) -> Result<()> {
        for n in names {
            let img = self
                .images()
                .get(n)
                .map_err(|_| Error::NotFound(format!("No such image: {n}")))?;
            self.events()
                .emit("image", "save", &img.id, self.image_attrs(n));
        }
        self.images().save(names, out)?;
        Ok(())
    }

    pub fn tag_image(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let r = Reference::parse_with_tag(repo, tag.filter(|t| !t.is_empty()))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if r.digest().is_some() {
            return Err(Error::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let img = self.images().get(source)?;
        self.images().tag(&img.id, &r)?;
        self.events()
            .emit("image", "tag", &img.id, self.image_attrs(&r.familiar()));
        Ok(())
    }

    fn containers_using(&self, image_id: &str) -> Vec<(String, bool)> {
        self.all_handles()
            .iter()
            .map(|h| h.snapshot())
            .filter(|c| c.image == image_id)
            .map(|c| (c.id.clone(), c.state.status().is_active()))
            .collect()
    }

    /// `DELETE /images/{name}` with moby's untag/delete/conflict rules.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<Value>> {
        let img = self.images().get(name).map_err(|e| match e.kind() {
            berth_image::ErrorKind::NotFound => no_such_image(name),
            _ => e.into(),
        })?;
        let by_id = {
            let h = name.strip_prefix("sha256:").unwrap_or(name);
            img.id.trim_start_matches("sha256:").starts_with(h)
                && h.chars().all(|c| c.is_ascii_hexdigit())
                && !img.repo_tags.iter().any(|t| {
                    Reference::parse(name).map(|r| r.familiar()).ok().as_deref() == Some(t.as_str())
                })
        };
        let users = self.containers_using(&img.id);
        let mut out = Vec::new();
        if !by_id {
            let r = parse_ref(name)?;
            let is_last_tag = img.repo_tags.len() <= 1;
            // Digest references of the same repository go with its last tag (as dockerd does),
            // so a pushed or pulled image does not linger under `repo@sha256:...`.
            let same_repo_digests: Vec<String> = if is_last_tag {
                img.repo_digests
                    .iter()
                    .filter(|d| {
                        Reference::parse(d).map(|x| x.familiar_name()).ok()
                            == Some(r.familiar_name())
                    })
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            let remaining = img.repo_tags.len() + img.repo_digests.len() - same_repo_digests.len();
            let is_last = remaining <= 1;
            if is_last && !users.is_empty() && !force {
                return Err(Error::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    short(&users[0].0),
                    short(&img.id)
                )));
            }
            self.images().untag(&r)?;
            out.push(json!({"Untagged": r.familiar()}));
            self.events()
                .emit("image", "untag", &img.id, self.image_attrs(&r.familiar()));
            if r.digest().is_none() {
                for dgst in &same_repo_digests {
                    if let Ok(dr) = Reference::parse(dgst) {
                        if self.images().untag(&dr).is_ok() {
                            out.push(json!({"Untagged": dgst}));
                        }
                    }
                }
            }
            if !is_last || !users.is_empty() {
                return Ok(out);
            }
        } else {
            if let Some((cid, _)) = users.iter().find(|(_, running)| *running) {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                    short(&img.id),
                    short(cid)
                )));
            }
            // moby checks several references before stopped users (checkImageDeleteConflict).
            if !force {
                if img.repo_tags.len() > 1 {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short(&img.id)
                    )));
                }
                if let Some((cid, _)) = users.first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                        short(&img.id),
                        short(cid)
                    )));
                }
            }
            for t in img.repo_tags.iter().chain(img.repo_digests.iter()) {
                if let Ok(r) = Reference::parse(t) {
                    let _ = self.images().untag(&r);
                    out.push(json!({"Untagged": t}));
                    self.events()
                        .emit("image", "untag", &img.id, self.image_attrs(t));
                }
            }
            if !users.is_empty() {
                return Ok(out);
            }
        }
        for d in self.images().delete(&img.id)? {
            out.push(json!({"Deleted": d}));
        }
        self.events()
            .emit("image", "delete", &img.id, self.image_attrs(&img.id));
        Ok(out)
    }

    pub fn list_images(&self, all: bool, filters: &Filters, digests: bool) -> Result<Vec<Value>> {
        filters.validate(&["dangling", "label", "before", "since", "reference", "until"])?;
        let dangling = filters.bool_value("dangling")?;
        let mut imgs = self.images().list()?;
        imgs.sort_by(|a, b| b.created.cmp(&a.created));
        let before = filters
            .get("before")
            .first()
            .map(|n| self.images().get(n))
            .transpose()?;
        let since = filters
            .get("since")
            .first()
            .map(|n| self.images().get(n))
            .transpose()?;
        let counts: BTreeMap<String, i64> =
            self.all_handles().iter().fold(BTreeMap::new(), |mut m, h| {
                *m.entry(h.snapshot().image).or_default() += 1;
                m
            });
        // Untagged images that are the parent of another image are build intermediates:
        // dockerd lists them only with `all`.
        let parents: HashSet<String> = imgs
            .iter()
            .map(|i| i.parent.clone())
            .filter(|p| !p.is_empty())
            .collect();
        let mut out = Vec::new();
        for img in imgs {
            let is_dangling = img.repo_tags.is_empty();
            if !all && is_dangling && parents.contains(&img.id) {
                continue;
            }
            if dangling.is_some_and(|d| d != is_dangling) {
                continue;
            }
            if !filters.match_labels("label", img.config.config.labels.as_ref()) {
                continue;
            }
            if before.as_ref().is_some_and(|b| img.created >= b.created)
                || since.as_ref().is_some_and(|s| img.created <= s.created)
            {
                continue;
            }
            let mut tags = img.repo_tags.clone();
            if filters.has("reference") {
                tags.retain(|t| {
                    filters
                        .get("reference")
                        .iter()
                        .any(|p| reference_matches(p, t))
                });
                if tags.is_empty() {
                    continue;
                }
            }
            let mut v = json!({
                "Id": img.id,
                "ParentId": img.parent,
                "RepoTags": tags,
                "RepoDigests": img.repo_digests,
                "Created": unix_created(&img),
                "Size": img.size,
                "SharedSize": -1,
                "Labels": img.config.config.labels.clone().unwrap_or_default(),
                "Containers": counts.get(&img.id).copied().unwrap_or(0),
            });
            if digests && img.repo_digests.is_empty() {
                v["RepoDigests"] = json!([]);
            }
            out.push(v);
        }
        Ok(out)
    }

    pub fn inspect_image(&self, name: &str) -> Result<Value> {
        let img = self.images().get(name).map_err(|e| match e.kind() {
            berth_image::ErrorKind::NotFound => no_such_image(name),
            _ => e.into(),
        })?;
        let cfg = &img.config;
        Ok(json!({
            "Id": img.id,
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Parent": img.parent,
            "Comment": cfg.comment.clone().unwrap_or_default(),
            "Created": img.created,
            "DockerVersion": "",
            "Author": cfg.author.clone().unwrap_or_default(),
            "Config": cfg.config,
            "Architecture": cfg.architecture,
            "Os": cfg.os,
            "Size": img.size,
            "GraphDriver": {"Name": "overlay2", "Data": {}},
            "RootFS": {"Type": "layers", "Layers": cfg.rootfs.diff_ids},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }))
    }

    pub fn image_history(&self, name: &str) -> Result<Vec<Value>> {
        let items = self.images().history(name).map_err(|e| match e.kind() {
            berth_image::ErrorKind::NotFound => no_such_image(name),
            _ => e.into(),
        })?;
        Ok(items
            .into_iter()
            .map(|h| {
                json!({
                    "Id": h.id,
                    "Created": h.created,
                    "CreatedBy": h.created_by,
                    "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
                    "Size": h.size,
                    "Comment": h.comment,
                })
            })
            .collect())
    }

    pub fn prune_images(&self, filters: &Filters) -> Result<Value> {
        filters.validate(&["dangling", "label", "until"])?;
        let only_dangling = filters.bool_value("dangling")?.unwrap_or(true);
        let in_use: HashSet<String> = self
            .all_handles()
            .iter()
            .map(|h| h.snapshot().image)
            .collect();
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        if !only_dangling {
            for img in self.images().list()? {
                if in_use.contains(&img.id)
                    || !filters.match_labels("label", img.config.config.labels.as_ref())
                {
                    continue;
                }
                for t in &img.repo_tags {
                    if let Ok(r) = Reference::parse(t) {
                        let _ = self.images().untag(&r);
                        deleted.push(json!({"Untagged": t}));
                    }
                }
            }
        }
        let (ids, bytes) = self.images().prune_dangling(&in_use)?;
        reclaimed += bytes;
        for id in ids {
            self.events()
                .emit("image", "delete", &id, self.image_attrs(&id));
            deleted.push(json!({"Deleted": id}));
        }
        Ok(
            json!({"ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
        )
    }
}

/// `reference=` filter: a glob on the familiar name, with or without tag.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let name = tag.rsplit_once(':').map(|(n, _)| n).unwrap_or(tag);
    glob(pattern, tag) || glob(pattern, name)
}

fn glob(p: &str, s: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => {
                rec(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && rec(p, &s[1..]))
            }
            (Some(b'?'), Some(c)) if *c != b'/' => rec(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &s[1..]),
            _ => false,
        }
    }
    rec(p.as_bytes(), s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:latest"));
        assert!(reference_matches("busybox:lat*", "busybox:latest"));
        assert!(!reference_matches("alpine", "busybox:latest"));
        assert!(!reference_matches("*", "a/b:latest"));
    }
}
