//! Legacy `--link`s: the environment a linked container gets, and removing a link
//! (`DELETE /containers/{parent}/{alias}?link=1`).
//!
//! dockerd gives a container, for each link `name:alias`, variables describing the linked
//! container: `ALIAS_NAME=/parent/alias`, `ALIAS_PORT*` for its exposed ports (at the address
//! it has on a network both share) and `ALIAS_ENV_*` copies of its own environment. The
//! variables come before the container's own environment, which wins on a clash. The
//! `/etc/hosts` entries for links are written with the rest of the network files.

use super::Container;
use crate::network::parse_link;
use crate::{Engine, Error, Result};
use std::collections::BTreeSet;

/// One linked container, as [`link_env`] needs it.
pub struct LinkTarget<'a> {
    /// The link's alias ("db").
    pub alias: &'a str,
    /// The parent's (the linking container's) name, with its leading slash.
    pub parent_name: &'a str,
    /// The linked container's `Env`.
    pub env: &'a [String],
    /// Its exposed ports ("5432/tcp").
    pub ports: Vec<String>,
    /// Its address seen from the parent (empty when they share no network).
    pub ip: &'a str,
}

/// dockerd's `Link.ToEnv` (daemon/links): the variables for one link.
pub fn link_env(t: &LinkTarget<'_>) -> Vec<String> {
    let alias = t.alias.to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<(u32, String)> = t
        .ports
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((port.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // dockerd sorts tcp before udp for the same port, and by number otherwise.
    ports.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (a.1 != "tcp").cmp(&(b.1 != "tcp")))
    });
    let mut env = Vec::new();
    if !t.ip.is_empty() {
        if let Some((port, proto)) = ports.first() {
            env.push(format!("{alias}_PORT={proto}://{}:{port}", t.ip));
        }
        for (port, proto) in &ports {
            let upper = proto.to_ascii_uppercase();
            let prefix = format!("{alias}_PORT_{port}_{upper}");
            env.push(format!("{prefix}={proto}://{}:{port}", t.ip));
            env.push(format!("{prefix}_ADDR={}", t.ip));
            env.push(format!("{prefix}_PORT={port}"));
            env.push(format!("{prefix}_PROTO={proto}"));
        }
    }
    env.push(format!(
        "{alias}_NAME={}/{}",
        t.parent_name.trim_end_matches('/'),
        t.alias
    ));
    for kv in t.env {
        let Some((name, value)) = kv.split_once('=') else {
            continue;
        };
        // As dockerd: build-time noise that means nothing in the linking container.
        if name == "HOME" || name == "PATH" {
            continue;
        }
        env.push(format!("{alias}_ENV_{name}={value}"));
    }
    env
}

/// Puts `links` before `own`, dropping link variables the container sets itself.
fn merge_env(links: Vec<String>, own: &mut Vec<String>) {
    let own_names: BTreeSet<String> = own
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map_or(kv.as_str(), |(k, _)| k)
                .to_string()
        })
        .collect();
    let mut merged: Vec<String> = links
        .into_iter()
        .filter(|kv| !own_names.contains(kv.split_once('=').map_or(kv.as_str(), |(k, _)| k)))
        .collect();
    merged.append(own);
    *own = merged;
}

impl Engine {
    /// Adds the variables of `c`'s links to the process environment `env` (at start, once
    /// the networks, hence the linked containers' addresses, are known). A link to a
    /// container that is gone is skipped, as the hosts file does.
    pub(crate) fn apply_link_env(&self, c: &Container, env: &mut Vec<String>) {
        let links = c.host_config.links.clone().unwrap_or_default();
        if links.is_empty() {
            return;
        }
        let own_net = self.container_net(c);
        let mut out = Vec::new();
        for link in &links {
            let (name, alias) = parse_link(link);
            let Ok(h) = self.lookup(&name) else {
                continue;
            };
            let other = h.snapshot();
            let onet = self.container_net(&other);
            let ip = own_net
                .networks
                .keys()
                .filter_map(|n| onet.networks.get(n))
                .chain(onet.networks.values())
                .map(|s| s.ip_address.clone())
                .find(|ip| !ip.is_empty())
                .unwrap_or_default();
            let ports = other
                .config
                .exposed_ports
                .iter()
                .flat_map(|m| m.keys().cloned())
                .collect();
            out.extend(link_env(&LinkTarget {
                alias: &alias,
                parent_name: &c.name,
                env: other.config.env.as_deref().unwrap_or_default(),
                ports,
                ip: &ip,
            }));
        }
        merge_env(out, env);
    }

    /// `DELETE /containers/{parent}/{alias}?link=1`: forgets the link `alias` of the
    /// container `parent`; both containers stay. Takes effect for the parent's next start
    /// (dockerd rewrites a running parent's hosts file; berth keeps it until then).
    pub fn remove_link(&self, parent: &str, alias: &str) -> Result<()> {
        let h = self.lookup(parent).map_err(|_| {
            Error::NotFound(format!(
                "Cannot get parent /{parent} for link name /{parent}/{alias}"
            ))
        })?;
        let removed = h.update(|c| {
            let Some(links) = c.host_config.links.as_mut() else {
                return false;
            };
            let before = links.len();
            links.retain(|l| parse_link(l).1 != alias);
            links.len() != before
        });
        if !removed {
            return Err(Error::NotFound(format!(
                "No such container: /{parent}/{alias}"
            )));
        }
        self.persist(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_of_a_link_follows_dockerd() {
        let env = vec![
            "FOO=1".to_string(),
            "PATH=/bin".to_string(),
            "A=b=c".to_string(),
        ];
        let got = link_env(&LinkTarget {
            alias: "my-db",
            parent_name: "/web",
            env: &env,
            ports: vec!["5432/tcp".into(), "53/udp".into()],
            ip: "172.17.0.2",
        });
        assert_eq!(
            got,
            vec![
                "MY_DB_PORT=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_FOO=1",
                "MY_DB_ENV_A=b=c",
            ]
        );
    }

    #[test]
    fn no_address_means_no_port_variables() {
        let got = link_env(&LinkTarget {
            alias: "x",
            parent_name: "/p",
            env: &[],
            ports: vec!["80/tcp".into()],
            ip: "",
        });
        assert_eq!(got, vec!["X_NAME=/p/x"]);
    }

    #[test]
    fn the_containers_own_env_wins() {
        let mut own = vec!["X_NAME=mine".to_string(), "B=2".to_string()];
        merge_env(vec!["X_NAME=/p/x".into(), "X_ENV_A=1".into()], &mut own);
        assert_eq!(own, vec!["X_ENV_A=1", "X_NAME=mine", "B=2"]);
    }
}
