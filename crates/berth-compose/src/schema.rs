//! Validation of a compose file against the Compose Specification's JSON schema
//! (`compose-spec.json`, draft-07, embedded at build time).
//!
//! A small validator for the keywords that schema uses (`$ref`, `type`, `properties`,
//! `patternProperties`, `additionalProperties`, `required`, `enum`, `oneOf`/`anyOf`/`allOf`,
//! `items`, `uniqueItems`, `minimum`/`maximum`, `pattern`) rather than a general JSON-schema
//! crate: what matters here is the error text, which must name the path the way docker
//! compose does (`services.web.ports.0 ...`, `services.web additional properties 'foo' not
//! allowed`). For a failing `oneOf` the most useful branch is reported: the one whose type
//! matches the value, else a "must be a X or Y" summary.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::interpolate::join;

/// A schema violation at `path`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}", render(path, message))]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

fn render(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path} {message}")
    }
}

const SPEC: &str = include_str!("compose-spec.json");

struct Schema {
    root: Value,
    regexes: std::sync::Mutex<HashMap<String, Regex>>,
}

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema {
        root: serde_json::from_str(SPEC).expect("the embedded compose-spec.json is valid JSON"),
        regexes: std::sync::Mutex::new(HashMap::new()),
    })
}

/// Validate a whole compose file (after interpolation).
pub fn validate(doc: &Value) -> Result<(), SchemaError> {
    let s = schema();
    s.check(&s.root, doc, "")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() != 0.0) => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    let have = type_name(v);
    want == have || (want == "number" && have == "integer")
}

fn article(t: &str) -> String {
    match t {
        "integer" | "object" | "array" => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

impl Schema {
    fn resolve<'s>(&'s self, mut node: &'s Value) -> &'s Value {
        // Follow `$ref` chains (`#/definitions/x`).
        for _ in 0..16 {
            let Some(r) = node.get("$ref").and_then(Value::as_str) else {
                return node;
            };
            let mut target = &self.root;
            for part in r.trim_start_matches("#/").split('/') {
                target = &target[part];
            }
            node = target;
        }
        node
    }

    fn regex_match(&self, pattern: &str, s: &str) -> bool {
        let mut cache = self
            .regexes
            .lock()
            .expect("regex cache lock is never poisoned");
        if !cache.contains_key(pattern) {
            match Regex::new(pattern) {
                Ok(r) => {
                    cache.insert(pattern.to_string(), r);
                }
                // A pattern our engine cannot compile never rejects a value.
                Err(_) => return true,
            }
        }
        cache[pattern].is_match(s)
    }

    /// The types a schema node accepts directly (for messages and branch choice).
    fn types_of(&self, node: &Value) -> Vec<String> {
        let node = self.resolve(node);
        match node.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            _ => {
                let mut out = Vec::new();
                for k in ["oneOf", "anyOf"] {
                    if let Some(Value::Array(bs)) = node.get(k) {
                        for b in bs {
                            for t in self.types_of(b) {
                                if !out.contains(&t) {
                                    out.push(t);
                                }
                            }
                        }
                    }
                }
                out
            }
        }
    }

    fn err(path: &str, message: String) -> SchemaError {
        SchemaError {
            path: path.to_string(),
            message,
        }
    }

    fn check(&self, node: &Value, v: &Value, path: &str) -> Result<(), SchemaError> {
        let node = self.resolve(node);
        let Some(obj) = node.as_object() else {
            return Ok(());
        };
        if let Some(t) = obj.get("type") {
            let types = self.types_of(node);
            if !types.iter().any(|t| type_matches(t, v)) {
                let _ = t;
                let want: Vec<String> = types.iter().map(|t| article(t)).collect();
                return Err(Self::err(path, format!("must be {}", want.join(" or "))));
            }
        }
        if let Some(Value::Array(allowed)) = obj.get("enum") {
            if !allowed.contains(v) {
                let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
                return Err(Self::err(
                    path,
                    format!("must be one of the following: {}", list.join(", ")),
                ));
            }
        }
        if let Some(Value::Array(branches)) = obj.get("allOf") {
            for b in branches {
                self.check(b, v, path)?;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = obj.get(key) {
                self.check_branches(branches, v, path)?;
            }
        }
        match v {
            Value::Object(m) => self.check_object(obj, m, path)?,
            Value::Array(items) => {
                if let Some(item_schema) = obj.get("items") {
                    for (i, it) in items.iter().enumerate() {
                        self.check(item_schema, it, &join(path, &i.to_string()))?;
                    }
                }
                if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
                    for (i, it) in items.iter().enumerate() {
                        if items[..i].contains(it) {
                            return Err(Self::err(
                                path,
                                format!("contains duplicate element: {}", plain(it)),
                            ));
                        }
                    }
                }
            }
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
                    if f < min {
                        return Err(Self::err(
                            path,
                            format!("must be greater than or equal to {min}"),
                        ));
                    }
                }
                if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
                    if f > max {
                        return Err(Self::err(
                            path,
                            format!("must be less than or equal to {max}"),
                        ));
                    }
                }
            }
            Value::String(s) => {
                if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
                    if !self.regex_match(p, s) {
                        return Err(Self::err(path, format!("does not match pattern {p:?}")));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn check_branches(&self, branches: &[Value], v: &Value, path: &str) -> Result<(), SchemaError> {
        let mut errors = Vec::new();
        for b in branches {
            match self.check(b, v, path) {
                Ok(()) => return Ok(()),
                Err(e) => errors.push((b, e)),
            }
        }
        // Report the branch that accepted the value's type: its error is the real one.
        for (b, e) in &errors {
            if self.types_of(b).iter().any(|t| type_matches(t, v)) {
                return Err(e.clone());
            }
        }
        let mut types = Vec::new();
        for b in branches {
            for t in self.types_of(b) {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
        if types.is_empty() {
            return Err(errors
                .into_iter()
                .next()
                .map(|(_, e)| e)
                .unwrap_or_else(|| Self::err(path, "is invalid".to_string())));
        }
        let want: Vec<String> = types.iter().map(|t| article(t)).collect();
        Err(Self::err(path, format!("must be {}", want.join(" or "))))
    }

    fn check_object(
        &self,
        obj: &serde_json::Map<String, Value>,
        m: &serde_json::Map<String, Value>,
        path: &str,
    ) -> Result<(), SchemaError> {
        if let Some(Value::Array(req)) = obj.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    return Err(Self::err(path, format!("{r} is required")));
                }
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        let patterns = obj.get("patternProperties").and_then(Value::as_object);
        for (k, val) in m {
            let p = join(path, k);
            let mut matched = false;
            if let Some(s) = props.and_then(|ps| ps.get(k)) {
                matched = true;
                self.check(s, val, &p)?;
            }
            if let Some(pats) = patterns {
                for (pat, s) in pats {
                    if self.regex_match(pat, k) {
                        matched = true;
                        self.check(s, val, &p)?;
                    }
                }
            }
            if !matched {
                match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(Self::err(
                            path,
                            format!("additional properties '{k}' not allowed"),
                        ));
                    }
                    Some(s @ Value::Object(_)) => self.check(s, val, &p)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_a_simple_file() {
        let doc = json!({"services": {"web": {"image": "busybox", "ports": ["80:80", 81, {"target": 82}]}}});
        validate(&doc).expect("valid");
    }

    #[test]
    fn errors_name_paths() {
        let cases = [
            (json!({"services": {"web": {"image": "b", "foo": 1}}}), "services.web additional properties 'foo' not allowed"),
            (json!({"services": {"web": {"ports": [true]}}}), "services.web.ports.0 must be a number or a string or an object"),
            (json!({"services": {"web": {"image": 3}}}), "services.web.image must be a string"),
            (json!({"servics": {}}), "additional properties 'servics' not allowed"),
            (json!({"services": {"web": {"depends_on": {"db": {"condition": "bad"}}}}}), "services.web.depends_on.db.condition must be one of the following: \"service_started\", \"service_healthy\", \"service_completed_successfully\""),
            (json!({"services": {"web": {"volumes": [{"source": "a"}]}}}), "services.web.volumes.0 type is required"),
        ];
        for (doc, want) in cases {
            let e = validate(&doc).expect_err(want);
            assert_eq!(e.to_string(), want);
        }
    }

    #[test]
    fn extensions_are_allowed() {
        validate(&json!({"x-any": {"a": 1}, "services": {"w": {"x-foo": 2, "image": "b"}}}))
            .expect("valid");
    }
}

/// The 1-based line of `path` (`services.web.ports.0`, optionally followed by an offending
/// key named in the message) in the YAML `text`, found by walking indentation. The loader
/// has no spans after interpolation, so this maps a schema error back to the file. When
/// the path ends inside a flow collection it gives the line that collection starts on;
/// `None` when the layout is too unusual (anchors) or the key is not there.
pub fn locate_line(text: &str, path: &str, message: &str) -> Option<usize> {
    let mut segs: Vec<String> = path
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(k) = message
        .split("additional properties '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
    {
        segs.push(k.to_string());
    }
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let content = |l: &str| {
        l.trim_start()
            .trim_start_matches("- ")
            .trim_start()
            .to_string()
    };
    let meaningful = |l: &str| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    };
    // (line index, indentation of the key on it) of the node found so far.
    let mut at: Option<(usize, usize)> = None;
    for seg in segs {
        let (from, parent_ind) = match at {
            None => (0, None),
            Some((i, ind)) => (i, Some(ind)),
        };
        let mut found = None;
        if let Ok(n) = seg.parse::<usize>() {
            let mut item_ind = None;
            let mut count = 0;
            for (i, l) in lines.iter().enumerate().skip(from + 1) {
                if !meaningful(l) {
                    continue;
                }
                let ind = indent(l);
                if parent_ind.is_some_and(|p| ind <= p) {
                    break;
                }
                if l.trim_start().starts_with('-') {
                    let it = *item_ind.get_or_insert(ind);
                    if ind == it {
                        if count == n {
                            found = Some((i, ind + 2));
                            break;
                        }
                        count += 1;
                    }
                }
            }
        } else {
            let key_forms = [
                format!("{seg}:"),
                format!("\"{seg}\":"),
                format!("'{seg}':"),
            ];
            // The key may sit on the item line itself (`- key: v`).
            let first = if at.is_some() { from } else { 0 };
            for (i, l) in lines.iter().enumerate().skip(first) {
                if !meaningful(l) {
                    continue;
                }
                let ind = if l.trim_start().starts_with("- ") {
                    indent(l) + 2
                } else {
                    indent(l)
                };
                if i > first && parent_ind.is_some_and(|p| ind <= p) && at.is_some() {
                    break;
                }
                if (at.is_none() && ind == 0 || parent_ind.is_none_or(|p| ind >= p))
                    && key_forms.iter().any(|k| content(l).starts_with(k.as_str()))
                    && (i > first || l.trim_start().starts_with("- ") || at.is_none())
                {
                    found = Some((i, ind));
                    break;
                }
            }
        }
        // Flow style (`{target: 1, foo: 2}`) hides deeper keys from this walk: the line of
        // the flow node found still points the user at the right place.
        match (found, at) {
            (Some(f), _) => at = Some(f),
            (None, Some((i, _))) if lines[i].contains(['{', '[']) => break,
            (None, _) => return None,
        }
    }
    at.map(|(i, _)| i + 1)
}

#[cfg(test)]
mod locate_tests {
    use super::locate_line;

    const Y: &str = "services:\n  web:\n    image: busybox\n    ports:\n      - \"80:80\"\n      - foo: bar\n    bogus_key: 1\n  db:\n    image: x\n";

    #[test]
    fn finds_keys_and_items() {
        assert_eq!(
            locate_line(
                Y,
                "services.web",
                "additional properties 'bogus_key' not allowed"
            ),
            Some(7)
        );
        assert_eq!(
            locate_line(
                Y,
                "services.web.ports.1",
                "additional properties 'foo' not allowed"
            ),
            Some(6)
        );
        assert_eq!(
            locate_line(Y, "services.db.image", "must be a string"),
            Some(9)
        );
        assert_eq!(locate_line(Y, "services.nope", "x"), None);
        let flow = "services:\n  web:\n    ports: [{target: 1, foo: 2}]\n";
        assert_eq!(
            locate_line(
                flow,
                "services.web.ports.0",
                "additional properties 'foo' not allowed"
            ),
            Some(3)
        );
    }
}
