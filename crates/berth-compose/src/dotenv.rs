//! `.env` / `env_file` parsing with the rules docker compose v2 applies: `KEY=VALUE`,
//! optional `export `, `#` comments (inline only after whitespace in unquoted values),
//! single quotes literal, double quotes with `\n`, `\t`, `\"`, `\\` escapes, and `${VAR}`
//! interpolation in unquoted and double-quoted values against the variables defined so
//! far plus the lookup environment. A bare `KEY` takes its value from the lookup
//! environment and is skipped when that has none.

use std::collections::BTreeMap;
use std::path::Path;

use crate::interpolate::Interpolator;

/// Env-file failures, naming the file and line.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: unexpected character {found:?} in variable name {name:?}")]
    BadName {
        path: String,
        line: usize,
        name: String,
        found: char,
    },
    #[error("{path}:{line}: unterminated quoted value")]
    Unterminated { path: String, line: usize },
    #[error("{path}:{line}: {source}")]
    Interpolate {
        path: String,
        line: usize,
        source: crate::interpolate::InterpolateError,
    },
}

/// Read and parse `path`; `lookup` resolves references and bare keys.
pub fn read(
    path: &Path,
    lookup: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, DotenvError> {
    let text = std::fs::read_to_string(path).map_err(|source| DotenvError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string(), lookup)
}

/// Parse env-file text; `origin` names it in errors.
pub fn parse(
    text: &str,
    origin: &str,
    lookup: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, DotenvError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut n = 0;
    while n < lines.len() {
        let lineno = n + 1;
        let raw = lines[n].trim_start_matches('\u{feff}');
        n += 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, rest) = match line.find('=') {
            Some(i) => (line[..i].trim(), Some(&line[i + 1..])),
            None => (line, None),
        };
        if let Some(found) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')))
        {
            return Err(DotenvError::BadName {
                path: origin.to_string(),
                line: lineno,
                name: key.to_string(),
                found,
            });
        }
        let Some(rest) = rest else {
            if let Some(v) = lookup.get(key) {
                out.push((key.to_string(), v.clone()));
            }
            continue;
        };
        let rest = rest.trim_start();
        let mut scope = lookup.clone();
        for (k, v) in &out {
            scope.insert(k.clone(), v.clone());
        }
        let interp = |s: &str| -> Result<String, DotenvError> {
            let mut i = Interpolator::new(&scope);
            i.string(s, key).map_err(|source| DotenvError::Interpolate {
                path: origin.to_string(),
                line: lineno,
                source,
            })
        };
        let value = if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            // Quoted values may span lines.
            let mut buf = rest[1..].to_string();
            let close = loop {
                if let Some(i) = find_close(&buf, q) {
                    break i;
                }
                if n >= lines.len() {
                    return Err(DotenvError::Unterminated {
                        path: origin.to_string(),
                        line: lineno,
                    });
                }
                buf.push('\n');
                buf.push_str(lines[n]);
                n += 1;
            };
            let body = &buf[..close];
            if q == '\'' {
                body.to_string()
            } else {
                interp(&unescape(body))?
            }
        } else {
            let v = match rest.find(" #") {
                Some(i) => &rest[..i],
                None => rest,
            };
            interp(v.trim_end())?
        };
        out.retain(|(k, _)| k != key);
        out.push((key.to_string(), value));
    }
    Ok(out)
}

fn find_close(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' && q == '"' {
            escaped = true;
            continue;
        }
        if c == q {
            return Some(i);
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let mut lookup = BTreeMap::new();
        lookup.insert("HOME".to_string(), "/root".to_string());
        let text = "# c\nA=1\nexport B = two \nC='lit $HOME'\nD=\"q\\n$A\"\nE=x #comment\nHOME\nMISSING\nF=${A}-${B}\nG=\"multi\nline\"\n";
        let got = parse(text, ".env", &lookup).expect("parses");
        let m: BTreeMap<_, _> = got.into_iter().collect();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two");
        assert_eq!(m["C"], "lit $HOME");
        assert_eq!(m["D"], "q\n1");
        assert_eq!(m["E"], "x");
        assert_eq!(m["HOME"], "/root");
        assert!(!m.contains_key("MISSING"));
        assert_eq!(m["F"], "1-two");
        assert_eq!(m["G"], "multi\nline");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("A=1\nB C=2\n", "x.env", &BTreeMap::new()).expect_err("bad name");
        assert!(e.to_string().starts_with("x.env:2:"), "{e}");
        let e = parse("A=\"open\n", "x.env", &BTreeMap::new()).expect_err("unterminated");
        assert_eq!(e.to_string(), "x.env:1: unterminated quoted value");
    }
}
