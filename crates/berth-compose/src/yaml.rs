//! Reading one compose file's YAML into a JSON tree, keeping compose's merge tags.
//!
//! The Compose Specification defines two YAML tags that only mean something when files are
//! merged (several `-f` files, override files, `extends`): `!reset` drops whatever an
//! earlier file gave that attribute, `!override` replaces it whole instead of merging. A
//! plain `serde_json::Value` loses tags, so the tree is read through serde-saphyr's
//! [`Tagged`] wrapper at every node, which reports the tag each node carried.
//!
//! What comes out follows compose-go's `ResetProcessor`: a `!reset` node is removed from
//! the file's own tree (the file reads as if the attribute were absent), and the paths of
//! both tags are returned so that the loader can delete those paths from the model merged
//! so far before this file is merged onto it. Deleting first is all `!override` needs too:
//! the file's value then lands where nothing is left to merge with. Paths through sequence
//! items are reported with the index as a key; the loader only follows mapping keys, so an
//! item of a list cannot be reset from another file (compose-go does not support it either).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Tagged;

/// A compose merge tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeTag {
    /// `!reset`: the attribute is removed from the base.
    Reset,
    /// `!override`: the attribute replaces the base instead of merging with it.
    Override,
}

/// One file's tree and the paths (mapping keys, sequence indexes as strings) of its tags.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub value: Value,
    pub tags: Vec<(Vec<String>, MergeTag)>,
}

/// Errors of reading YAML.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// A syntax or structure error; `line` and `column` are 1-based when known.
    #[error("{}{message}", position(*.line, *.column))]
    Syntax {
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{l}:{c}: "),
        (Some(l), None) => format!("{l}: "),
        _ => String::new(),
    }
}

/// Parse `text` (one document) as docker compose reads YAML: strict booleans (`yes` is a
/// string), numbers with leading zeros kept as strings, anchors, aliases and `<<` merge
/// keys applied, `!reset`/`!override` reported.
pub fn parse(text: &str) -> Result<Parsed, YamlError> {
    let mut opts = serde_saphyr::Options::default();
    opts.strict_booleans = true;
    opts.leading_zero_numbers_as_strings = true;
    let node: Node = serde_saphyr::from_str_with_options(text, opts).map_err(|e| {
        let loc = e.location();
        let (line, column) = (loc.map(|l| l.line()), loc.map(|l| l.column()));
        let first = e.to_string().lines().next().unwrap_or("").to_string();
        // serde-saphyr's text starts with its own "error: line N column M: "; the position
        // is given once, in file:line:col form, by the caller.
        let message = match (line, column) {
            (Some(l), Some(c)) => first
                .strip_prefix(&format!("error: line {l} column {c}: "))
                .map(str::to_string)
                .unwrap_or(first),
            _ => first,
        };
        YamlError::Syntax {
            line,
            column,
            message,
        }
    })?;
    let value = if node.reset { Value::Null } else { node.value };
    Ok(Parsed {
        value,
        tags: node.tags,
    })
}

/// Delete each `!reset`/`!override` path from `base` (the model merged so far), following
/// mapping keys only.
pub fn clear_tagged(base: &mut Map<String, Value>, tags: &[(Vec<String>, MergeTag)]) {
    for (path, _) in tags {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        remove_at(base, parents, last);
    }
}

fn remove_at(map: &mut Map<String, Value>, parents: &[String], last: &str) {
    match parents.split_first() {
        None => {
            map.remove(last);
        }
        Some((k, rest)) => {
            if let Some(Value::Object(m)) = map.get_mut(k) {
                remove_at(m, rest, last);
            }
        }
    }
}

/// The tags found under `prefix`, with the prefix taken off (for `extends`: a service's
/// tags relative to the service).
pub fn tags_under(
    tags: &[(Vec<String>, MergeTag)],
    prefix: &[&str],
) -> Vec<(Vec<String>, MergeTag)> {
    tags.iter()
        .filter(|(p, _)| p.len() > prefix.len() && p.iter().zip(prefix).all(|(a, b)| a == b))
        .map(|(p, t)| (p[prefix.len()..].to_vec(), *t))
        .collect()
}

/// One YAML node: its value, the tags found in it (paths relative to it), and whether it
/// was itself tagged `!reset` (then its parent leaves it out).
struct Node {
    value: Value,
    tags: Vec<(Vec<String>, MergeTag)>,
    reset: bool,
}

/// A node's content without its own tag.
struct Inner(Value, Vec<(Vec<String>, MergeTag)>);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Tagged(Inner(value, mut tags), tag) = Tagged::<Inner>::deserialize(d)?;
        let tag = match tag.as_deref() {
            Some("!reset") => Some(MergeTag::Reset),
            Some("!override") => Some(MergeTag::Override),
            _ => None,
        };
        if let Some(t) = tag {
            tags.push((Vec::new(), t));
        }
        Ok(Node {
            value,
            tags,
            reset: tag == Some(MergeTag::Reset),
        })
    }
}

impl<'de> Deserialize<'de> for Inner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InnerVisitor)
    }
}

struct InnerVisitor;

fn leaf(v: Value) -> Inner {
    Inner(v, Vec::new())
}

impl<'de> Visitor<'de> for InnerVisitor {
    type Value = Inner;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Inner, E> {
        Ok(leaf(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Inner, E> {
        Ok(leaf(Value::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Inner, E> {
        Ok(leaf(Value::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Inner, E> {
        Ok(leaf(Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Inner, E> {
        Ok(leaf(Value::String(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Inner, E> {
        Ok(leaf(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Inner, E> {
        Ok(leaf(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Inner, E> {
        Ok(leaf(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Inner, D::Error> {
        Inner::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Inner, A::Error> {
        let mut items = Vec::new();
        let mut tags = Vec::new();
        let mut index = 0usize;
        while let Some(n) = seq.next_element::<Node>()? {
            for (mut p, t) in n.tags {
                p.insert(0, index.to_string());
                tags.push((p, t));
            }
            if !n.reset {
                items.push(n.value);
            }
            index += 1;
        }
        Ok(Inner(Value::Array(items), tags))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Inner, A::Error> {
        let mut out = Map::new();
        let mut tags = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let n: Node = map.next_value()?;
            for (mut p, t) in n.tags {
                p.insert(0, k.clone());
                tags.push((p, t));
            }
            if n.reset {
                out.remove(&k);
            } else {
                out.insert(k, n.value);
            }
        }
        Ok(Inner(Value::Object(out), tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_are_reported_and_reset_nodes_dropped() {
        let p = parse(
            "services:\n  web:\n    image: a\n    ports: !reset []\n    command: !override [x]\n    dns: [1.1.1.1, !reset 8.8.8.8]\n",
        )
        .expect("parses");
        assert_eq!(
            p.value,
            json!({"services": {"web": {"image": "a", "command": ["x"], "dns": ["1.1.1.1"]}}})
        );
        let paths: Vec<(String, MergeTag)> =
            p.tags.iter().map(|(p, t)| (p.join("."), *t)).collect();
        assert_eq!(
            paths,
            vec![
                ("services.web.ports".to_string(), MergeTag::Reset),
                ("services.web.command".to_string(), MergeTag::Override),
                ("services.web.dns.1".to_string(), MergeTag::Reset),
            ]
        );
    }

    #[test]
    fn plain_yaml_reads_as_before() {
        let p = parse(
            "x-a: &a {image: busybox, restart: always}\nservices:\n  s:\n    <<: *a\n    restart: 'no'\n    mode: 0755\n    on: yes\n    n: 1.5\n    e: ~\n",
        )
        .expect("parses");
        assert!(p.tags.is_empty());
        assert_eq!(
            p.value["services"]["s"],
            json!({"image": "busybox", "restart": "no", "mode": "0755", "on": "yes", "n": 1.5, "e": null})
        );
    }

    #[test]
    fn clear_follows_mapping_keys_only() {
        let mut base = json!({"services": {"web": {"ports": [1], "dns": ["a", "b"], "environment": {"A": "1", "B": "2"}}}});
        let base = base.as_object_mut().expect("map");
        let tags = vec![
            (
                vec!["services".into(), "web".into(), "ports".into()],
                MergeTag::Reset,
            ),
            (
                vec!["services".into(), "web".into(), "dns".into(), "0".into()],
                MergeTag::Reset,
            ),
            (
                vec![
                    "services".into(),
                    "web".into(),
                    "environment".into(),
                    "A".into(),
                ],
                MergeTag::Override,
            ),
        ];
        clear_tagged(base, &tags);
        assert_eq!(
            Value::Object(base.clone()),
            json!({"services": {"web": {"dns": ["a", "b"], "environment": {"B": "2"}}}})
        );
        assert_eq!(
            tags_under(&tags, &["services", "web"])[0].0,
            vec!["ports".to_string()]
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse("services:\n  web:\n    image: [a\n").expect_err("bad yaml");
        let YamlError::Syntax { line, column, .. } = &e;
        assert!(line.is_some() && column.is_some(), "{e}");
        assert!(e.to_string().starts_with(&format!(
            "{}:{}: ",
            line.unwrap_or(0),
            column.unwrap_or(0)
        )));
    }
}
