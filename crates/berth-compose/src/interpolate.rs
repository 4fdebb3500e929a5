//! Variable interpolation in compose files: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}` and `$$`.
//!
//! It works on the generic YAML value after parsing (only string scalars are interpolated,
//! never keys), so an error names the path of the value (`services.web.image`), as
//! compose-go does. Defaults may nest further substitutions (`${A:-${B:-x}}`), so the
//! default part is found by brace matching and interpolated recursively. Unset variables
//! without a default become empty strings and produce a warning, like docker compose's
//! `The "X" variable is not set. Defaulting to a blank string.`

use std::collections::BTreeMap;

use serde_json::Value;

/// Interpolation failures; `path` is the dotted path of the value being interpolated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpolateError {
    #[error("invalid interpolation format for {path}: {value:?}; you may need to escape any $ with another $")]
    Format { path: String, value: String },
    #[error("required variable {var} is missing a value: {message}")]
    Required {
        path: String,
        var: String,
        message: String,
    },
}

/// Variable lookup plus the warnings produced while interpolating.
pub struct Interpolator<'a> {
    env: &'a BTreeMap<String, String>,
    /// Unset variables seen, in order, without duplicates.
    pub unset: Vec<String>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Interpolator<'a> {
    pub fn new(env: &'a BTreeMap<String, String>) -> Self {
        Interpolator {
            env,
            unset: Vec::new(),
        }
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn note_unset(&mut self, name: &str) {
        if !self.unset.iter().any(|n| n == name) {
            self.unset.push(name.to_string());
        }
    }

    /// Interpolate every string scalar inside `v` in place; `path` names `v`.
    pub fn value(&mut self, v: &mut Value, path: &str) -> Result<(), InterpolateError> {
        match v {
            Value::String(s) => {
                if s.contains('$') {
                    *s = self.string(s, path)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, it) in items.iter_mut().enumerate() {
                    self.value(it, &join(path, &i.to_string()))?;
                }
                Ok(())
            }
            Value::Object(m) => {
                for (k, it) in m.iter_mut() {
                    // Extension fields are not interpolated by compose either.
                    if path.is_empty() && k.starts_with("x-") {
                        continue;
                    }
                    self.value(it, &join(path, k))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Interpolate one string.
    pub fn string(&mut self, s: &str, path: &str) -> Result<String, InterpolateError> {
        let bad = || InterpolateError::Format {
            path: path.to_string(),
            value: s.to_string(),
        };
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c != '$' {
                out.push(c);
                i += 1;
                continue;
            }
            match chars.get(i + 1) {
                Some('$') => {
                    out.push('$');
                    i += 2;
                }
                Some('{') => {
                    let close = matching_brace(&chars, i + 1).ok_or_else(bad)?;
                    let inner: String = chars[i + 2..close].iter().collect();
                    out.push_str(&self.braced(&inner, path, s)?);
                    i = close + 1;
                }
                Some(&n) if is_name_start(n) => {
                    let mut j = i + 1;
                    while j < chars.len() && is_name_char(chars[j]) {
                        j += 1;
                    }
                    let name: String = chars[i + 1..j].iter().collect();
                    match self.lookup(&name) {
                        Some(v) => out.push_str(&v),
                        None => self.note_unset(&name),
                    }
                    i = j;
                }
                // A lone `$` at the end or before a non-name character is kept, as compose does.
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    /// The inside of `${...}`.
    fn braced(&mut self, inner: &str, path: &str, whole: &str) -> Result<String, InterpolateError> {
        let bad = || InterpolateError::Format {
            path: path.to_string(),
            value: whole.to_string(),
        };
        let name_len = inner
            .char_indices()
            .take_while(|(i, c)| {
                if *i == 0 {
                    is_name_start(*c)
                } else {
                    is_name_char(*c)
                }
            })
            .count();
        if name_len == 0 {
            return Err(bad());
        }
        let name = &inner[..name_len];
        let rest = &inner[name_len..];
        let value = self.lookup(name);
        if rest.is_empty() {
            return Ok(match value {
                Some(v) => v,
                None => {
                    self.note_unset(name);
                    String::new()
                }
            });
        }
        let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
            (":-", a)
        } else if let Some(a) = rest.strip_prefix(":?") {
            (":?", a)
        } else if let Some(a) = rest.strip_prefix(":+") {
            (":+", a)
        } else if let Some(a) = rest.strip_prefix('-') {
            ("-", a)
        } else if let Some(a) = rest.strip_prefix('?') {
            ("?", a)
        } else if let Some(a) = rest.strip_prefix('+') {
            ("+", a)
        } else {
            return Err(bad());
        };
        let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
        let set = value.is_some();
        match op {
            ":-" | "-" => {
                let use_default = if op == ":-" { !set_nonempty } else { !set };
                if use_default {
                    self.string(arg, path)
                } else {
                    Ok(value.unwrap_or_default())
                }
            }
            ":?" | "?" => {
                let missing = if op == ":?" { !set_nonempty } else { !set };
                if missing {
                    Err(InterpolateError::Required {
                        path: path.to_string(),
                        var: name.to_string(),
                        message: self.string(arg, path)?,
                    })
                } else {
                    Ok(value.unwrap_or_default())
                }
            }
            _ => {
                let use_alt = if op == ":+" { set_nonempty } else { set };
                if use_alt {
                    self.string(arg, path)
                } else {
                    Ok(String::new())
                }
            }
        }
    }
}

/// Index of the `}` closing the `{` at `open`, counting nested `${`.
fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `a.b` path joining that leaves the root empty.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("A", "a"), ("E", ""), ("N", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(s: &str) -> Result<String, InterpolateError> {
        let e = env();
        Interpolator::new(&e).string(s, "p")
    }

    #[test]
    fn table() {
        let cases = [
            ("plain", "plain"),
            ("$A", "a"),
            ("${A}", "a"),
            ("x${A}y", "xay"),
            ("$A-b", "a-b"),
            ("${U}", ""),
            ("$U", ""),
            ("${U:-d}", "d"),
            ("${E:-d}", "d"),
            ("${E-d}", ""),
            ("${U-d}", "d"),
            ("${A:-d}", "a"),
            ("${A:+alt}", "alt"),
            ("${E:+alt}", ""),
            ("${E+alt}", "alt"),
            ("${U+alt}", ""),
            ("$$A", "$A"),
            ("$${A}", "${A}"),
            ("${U:-${A}}", "a"),
            ("${U:-${V:-deep}}", "deep"),
            ("a$", "a$"),
            ("100$ ok", "100$ ok"),
            ("${N}0", "30"),
        ];
        for (input, want) in cases {
            assert_eq!(run(input).as_deref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn required_errors() {
        let e = run("${U:?need U}").expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "required variable U is missing a value: need U"
        );
        let e = run("${E:?empty}").expect_err("must fail");
        assert!(e.to_string().contains("E is missing"));
        assert_eq!(run("${E?set}").as_deref(), Ok(""));
        assert!(run("${U?unset}").is_err());
    }

    #[test]
    fn format_errors_name_the_path() {
        for bad in ["${", "${A", "${ A}", "${A:x}", "${}"] {
            let e = run(bad).expect_err(bad);
            assert!(
                e.to_string()
                    .starts_with("invalid interpolation format for p:"),
                "{e}"
            );
        }
    }

    #[test]
    fn tree_and_warnings() {
        let e = env();
        let mut i = Interpolator::new(&e);
        let mut v = serde_json::json!({"services": {"w": {"image": "${A}:${TAG}", "n": 1}}, "x-e": "${bad"});
        i.value(&mut v, "").expect("interpolates");
        assert_eq!(v["services"]["w"]["image"], "a:");
        assert_eq!(i.unset, vec!["TAG".to_string()]);
        let mut v = serde_json::json!({"services": {"w": {"ports": ["${"]}}});
        let err = i.value(&mut v, "").expect_err("bad");
        assert!(err.to_string().contains("services.w.ports.0"), "{err}");
    }
}
