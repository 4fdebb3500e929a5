//! The `filters` query parameter: `{"key":["v1","v2"]}` or the legacy `{"key":{"v1":true}}`.

use crate::{Error, Result};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&str>) -> Result<Filters> {
        let raw = match raw {
            None => return Ok(Filters::default()),
            Some(r) if r.trim().is_empty() => return Ok(Filters::default()),
            Some(r) => r,
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::InvalidArgument(format!("invalid filter: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::InvalidArgument("invalid filter: not an object".into()))?;
        let mut out = BTreeMap::new();
        for (k, val) in obj {
            let vals: Vec<String> = match val {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect(),
                serde_json::Value::Object(o) => o
                    .iter()
                    .filter(|(_, b)| b.as_bool().unwrap_or(false))
                    .map(|(s, _)| s.clone())
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid filter: value of {k:?} must be a list"
                    )))
                }
            };
            out.insert(k.clone(), vals);
        }
        Ok(Filters(out))
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Rejects keys the endpoint does not know, with Docker's wording.
    pub fn validate(&self, allowed: &[&str]) -> Result<()> {
        for k in self.0.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
        }
        Ok(())
    }

    /// `label=key` or `label=key=value` against a label map; all must match.
    pub fn match_labels(&self, key: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.get(key).iter().all(|want| {
            let (k, v) = match want.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (want.as_str(), None),
            };
            match labels.and_then(|l| l.get(k)) {
                None => false,
                Some(have) => v.is_none_or(|v| have == v),
            }
        })
    }

    /// `dangling=true|false|1|0`. Anything else, or both a true and a false value, is
    /// dockerd's `invalid filter 'key=[values]'`.
    pub fn bool_value(&self, key: &str) -> Result<Option<bool>> {
        let vals = self.get(key);
        if !self.has(key) {
            return Ok(None);
        }
        let is_true = vals.iter().any(|v| v == "true" || v == "1");
        let is_false = vals.iter().any(|v| v == "false" || v == "0");
        if is_true == is_false {
            return Err(Error::InvalidArgument(format!(
                "invalid filter '{key}=[{}]'",
                vals.join(" ")
            )));
        }
        Ok(Some(is_true))
    }

    /// dockerd's `Args.Match`: with no value for `key` everything matches; else `source`
    /// matches a value exactly or as an unanchored regular expression (an invalid one
    /// matches nothing), so `name=^web` works as with docker.
    pub fn matches(&self, key: &str, source: &str) -> bool {
        let vals = self.get(key);
        if vals.is_empty() || vals.iter().any(|v| v == source) {
            return true;
        }
        vals.iter().any(|v| {
            regex::Regex::new(v)
                .map(|re| re.is_match(source))
                .unwrap_or(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let f = Filters::parse(Some(r#"{"label":["a=b"],"status":{"running":true}}"#))
            .expect("valid filters");
        assert_eq!(f.get("label"), ["a=b"]);
        assert_eq!(f.get("status"), ["running"]);
        assert!(Filters::parse(Some("nope")).is_err());
    }

    #[test]
    fn labels() {
        let f = Filters::parse(Some(r#"{"label":["a","b=2"]}"#)).expect("valid");
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        l.insert("b".to_string(), "2".to_string());
        assert!(f.match_labels("label", Some(&l)));
        l.insert("b".to_string(), "3".to_string());
        assert!(!f.match_labels("label", Some(&l)));
        assert!(!f.match_labels("label", None));
    }

    #[test]
    fn bools_and_regex_match() {
        let f = |raw: &str| Filters::parse(Some(raw)).expect("valid json");
        assert_eq!(
            f(r#"{"dangling":["1"]}"#)
                .bool_value("dangling")
                .expect("bool"),
            Some(true)
        );
        assert_eq!(f("{}").bool_value("dangling").expect("absent"), None);
        assert_eq!(
            f(r#"{"dangling":["maybe"]}"#)
                .bool_value("dangling")
                .expect_err("not a bool")
                .to_string(),
            "invalid filter 'dangling=[maybe]'"
        );
        assert!(f(r#"{"dangling":["true","false"]}"#)
            .bool_value("dangling")
            .is_err());
        let n = f(r#"{"name":["^web","(bad"]}"#);
        assert!(n.matches("name", "web1"));
        assert!(!n.matches("name", "myweb"));
        assert!(n.matches("name", "(bad"), "exact match before the regex");
        assert!(f("{}").matches("name", "anything"));
        assert!(f(r#"{"name":["eb"]}"#).matches("name", "web"), "unanchored");
    }

    #[test]
    fn unknown_key_rejected() {
        let f = Filters::parse(Some(r#"{"bogus":["x"]}"#)).expect("valid json");
        assert_eq!(
            f.validate(&["label"]).expect_err("unknown").to_string(),
            "invalid filter 'bogus'"
        );
    }
}
