//! Dockerfile-style `--change` instructions for `docker import` (and `commit`), applied
//! to a [`ContainerConfig`]. Only the instructions docker accepts there are allowed:
//! CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
//! JSON-array forms are parsed as JSON; shell forms become `/bin/sh -c`.

use crate::config::ContainerConfig;
use std::collections::BTreeMap;

/// A change instruction that could not be applied; messages are docker's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("{0} is not a valid change command")]
    UnknownInstruction(String),
    #[error("{instruction} requires at least one argument")]
    MissingArgument { instruction: String },
    #[error("{instruction}: invalid argument {value:?}: {reason}")]
    InvalidValue {
        instruction: String,
        value: String,
        reason: &'static str,
    },
}

/// Apply each change line in order to `config`.
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<(), ChangeError> {
    for line in changes {
        apply_one(config, line)?;
    }
    Ok(())
}

fn apply_one(config: &mut ContainerConfig, line: &str) -> Result<(), ChangeError> {
    let line = line.trim();
    let (word, rest) = match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    };
    let instruction = word.to_ascii_uppercase();
    let missing = || ChangeError::MissingArgument {
        instruction: instruction.clone(),
    };
    match instruction.as_str() {
        "CMD" => config.cmd = Some(command_form(rest)),
        "ENTRYPOINT" => {
            // `ENTRYPOINT []` or an empty shell form clears it, as in docker
            let v = command_form(rest);
            config.entrypoint = Some(if rest.is_empty() { Vec::new() } else { v });
        }
        "ENV" => {
            if rest.is_empty() {
                return Err(missing());
            }
            let pairs = key_values(&instruction, rest)?;
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                match env
                    .iter_mut()
                    .find(|e| e.split('=').next() == Some(k.as_str()))
                {
                    Some(existing) => *existing = entry,
                    None => env.push(entry),
                }
            }
        }
        "LABEL" => {
            if rest.is_empty() {
                return Err(missing());
            }
            let pairs = key_values(&instruction, rest)?;
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(pairs);
        }
        "EXPOSE" => {
            if rest.is_empty() {
                return Err(missing());
            }
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in rest.split_whitespace() {
                for port in expand_port(p).ok_or_else(|| ChangeError::InvalidValue {
                    instruction: instruction.clone(),
                    value: p.to_string(),
                    reason: "expected PORT[-PORT][/PROTO]",
                })? {
                    ports.insert(port, serde_json::json!({}));
                }
            }
        }
        "VOLUME" => {
            if rest.is_empty() {
                return Err(missing());
            }
            let paths = match json_array(rest) {
                Some(v) => v,
                None => rest.split_whitespace().map(str::to_string).collect(),
            };
            let vols = config.volumes.get_or_insert_with(BTreeMap::new);
            for p in paths {
                if p.is_empty() {
                    return Err(ChangeError::InvalidValue {
                        instruction: instruction.clone(),
                        value: rest.to_string(),
                        reason: "volume path must not be empty",
                    });
                }
                vols.insert(p, serde_json::json!({}));
            }
        }
        "WORKDIR" => {
            if rest.is_empty() {
                return Err(missing());
            }
            let dir = unquote(rest);
            config.working_dir = Some(if dir.starts_with('/') {
                dir
            } else {
                let base = config
                    .working_dir
                    .clone()
                    .unwrap_or_else(|| "/".to_string());
                format!("{}/{}", base.trim_end_matches('/'), dir)
            });
        }
        "USER" => {
            if rest.is_empty() {
                return Err(missing());
            }
            config.user = Some(unquote(rest));
        }
        "STOPSIGNAL" => {
            if rest.is_empty() {
                return Err(missing());
            }
            config.stop_signal = Some(unquote(rest));
        }
        "ONBUILD" => {
            if rest.is_empty() {
                return Err(missing());
            }
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_string());
        }
        _ => return Err(ChangeError::UnknownInstruction(word.to_string())),
    }
    Ok(())
}

/// JSON exec form, or a shell form wrapped in `/bin/sh -c`.
fn command_form(rest: &str) -> Vec<String> {
    match json_array(rest) {
        Some(v) => v,
        None if rest.is_empty() => Vec::new(),
        None => vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()],
    }
}

fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

fn unquote(s: &str) -> String {
    let words = split_words(s);
    if words.len() == 1 {
        words.into_iter().next().unwrap_or_default()
    } else {
        s.to_string()
    }
}

/// Split on unquoted whitespace, removing quotes and backslash escapes.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `k=v k2="v 2"` or the legacy single pair `k v w`.
fn key_values(instruction: &str, rest: &str) -> Result<Vec<(String, String)>, ChangeError> {
    let words = split_words(rest);
    let first_has_eq = words.first().is_some_and(|w| w.contains('='));
    if !first_has_eq {
        // legacy form: the first word is the key, the rest of the line the value
        let mut it = rest.splitn(2, char::is_whitespace);
        let key = it.next().unwrap_or_default().to_string();
        let value = it.next().map(str::trim).unwrap_or_default();
        if value.is_empty() && instruction == "ENV" {
            return Err(ChangeError::InvalidValue {
                instruction: instruction.to_string(),
                value: rest.to_string(),
                reason: "ENV names can not be blank and need a value",
            });
        }
        return Ok(vec![(key, unquote(value))]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(ChangeError::InvalidValue {
                instruction: instruction.to_string(),
                value: w,
                reason: "expected KEY=VALUE",
            }),
        })
        .collect()
}

/// `80` -> `80/tcp`; `8000-8002/udp` -> three entries.
fn expand_port(p: &str) -> Option<Vec<String>> {
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return None;
    }
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().ok()?, b.parse::<u16>().ok()?),
        None => {
            let v = ports.parse::<u16>().ok()?;
            (v, v)
        }
    };
    if lo > hi {
        return None;
    }
    Some((lo..=hi).map(|x| format!("{x}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(lines: &[&str]) -> Result<ContainerConfig, ChangeError> {
        let mut c = ContainerConfig::default();
        let lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &lines)?;
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = apply(&[r#"CMD ["/bin/sh", "-c", "echo hi"]"#, "ENTRYPOINT top -b"]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "top -b"]);
        let c = apply(&["cmd echo"]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "echo"]);
    }

    #[test]
    fn env_forms_and_override() {
        let c = apply(&["ENV A=b C=\"d e\"", "ENV LEGACY some value", "ENV A=z"]).unwrap();
        assert_eq!(c.env.unwrap(), vec!["A=z", "C=d e", "LEGACY=some value"]);
        assert!(apply(&["ENV"]).is_err());
        assert!(apply(&["ENV =x"]).is_err());
    }

    #[test]
    fn other_instructions() {
        let c = apply(&[
            "EXPOSE 80 53/udp 8000-8001",
            "VOLUME /data /logs",
            r#"VOLUME ["/x"]"#,
            "LABEL a=1 \"b c\"=2",
            "WORKDIR /srv",
            "WORKDIR app",
            "USER nobody",
            "STOPSIGNAL SIGKILL",
            "ONBUILD RUN true",
        ])
        .unwrap();
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, vec!["/data", "/logs", "/x"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b c"], "2");
        assert_eq!(c.working_dir.as_deref(), Some("/srv/app"));
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGKILL"));
        assert_eq!(c.on_build.unwrap(), vec!["RUN true"]);
    }

    #[test]
    fn rejects_invalid() {
        let e = apply(&["RUN echo"]).unwrap_err();
        assert_eq!(e.to_string(), "RUN is not a valid change command");
        assert!(apply(&["FROM x"]).is_err());
        assert!(apply(&["EXPOSE abc"]).is_err());
        assert!(apply(&["EXPOSE 80/xyz"]).is_err());
        assert!(apply(&["USER"]).is_err());
    }
}
