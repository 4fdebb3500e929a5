//! `inspect` for every object type. Without `-f` the daemon's own bytes are re-indented
//! (Go's `json.Indent` with four spaces), so field order is the daemon's, as with docker.
//! With `-f` the template runs on each object and its output is followed by a newline.
//! Unknown names: `[]` then `Error: No such object: NAME` (or the typed daemon message
//! with `--type`), exit 1.

use berth_client::{empty_body, Client};
use serde_json::Value;

use crate::error::{CliError, CliResult};
use crate::format::template::Template;

/// Go's `json.Indent(dst, src, "", indent)`: whitespace between tokens is dropped, empty
/// objects and arrays stay `{}` / `[]`, strings are copied byte for byte.
pub fn go_json_indent(src: &[u8], indent: &str) -> String {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let mut need_indent = false;
    let nl = |out: &mut Vec<u8>, d: usize| {
        out.push(b'\n');
        for _ in 0..d {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    for &b in src {
        if in_str {
            out.push(b);
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if need_indent && b != b']' && b != b'}' {
            need_indent = false;
            depth += 1;
            nl(&mut out, depth);
        }
        match b {
            b'"' => {
                in_str = true;
                out.push(b);
            }
            b'{' | b'[' => {
                out.push(b);
                need_indent = true;
            }
            b',' => {
                out.push(b);
                nl(&mut out, depth);
            }
            b':' => {
                out.push(b);
                out.push(b' ');
            }
            b'}' | b']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    nl(&mut out, depth);
                }
                out.push(b);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path of an object of `kind`.
fn path_for(kind: &str, name: &str, size: bool) -> Option<String> {
    let q = if size { "?size=1" } else { "" };
    Some(match kind {
        "container" => format!("/containers/{name}/json{q}"),
        "image" => format!("/images/{name}/json"),
        "network" => format!("/networks/{name}"),
        "volume" => format!("/volumes/{name}"),
        _ => return None,
    })
}

async fn fetch(
    c: &Client,
    kind: &str,
    name: &str,
    size: bool,
) -> Result<bytes::Bytes, berth_client::Error> {
    let path = path_for(kind, name, size).expect("kind validated by caller");
    c.request(http::Method::GET, &path, empty_body(), &[])
        .await?
        .bytes()
        .await
}

/// `berth inspect` and the typed `X inspect` commands.
pub async fn inspect(
    c: &Client,
    kind: Option<&str>,
    format: Option<&str>,
    size: bool,
    names: &[String],
) -> CliResult {
    if let Some(k) = kind {
        if path_for(k, "", false).is_none() {
            return Err(CliError::Msg(format!(
                "\"{k}\" is not a valid value for --type"
            )));
        }
    }
    let tmpl = match format {
        Some(f) if f != "json" => {
            match Template::parse(&f.replace("\\t", "\t").replace("\\n", "\n")) {
                Ok(t) => Some(t),
                Err(e) => {
                    // docker's inspect reports template errors with status 64 (EX_USAGE).
                    eprintln!("{}", CliError::from(e));
                    return Err(CliError::Exit(64));
                }
            }
        }
        _ => None,
    };
    let mut raws: Vec<bytes::Bytes> = Vec::new();
    let mut errs = Vec::new();
    let mut text_out = String::new();
    for n in names {
        let got = match kind {
            Some(k) => fetch(c, k, n, size)
                .await
                .map_err(|e| CliError::from(e).render()),
            None => {
                let mut found = Err(format!("Error: No such object: {n}"));
                for k in ["container", "image", "network", "volume"] {
                    match fetch(c, k, n, size).await {
                        Ok(b) => {
                            found = Ok(b);
                            break;
                        }
                        Err(e) if e.is_not_found() => continue,
                        Err(e) => {
                            found = Err(CliError::from(e).render());
                            break;
                        }
                    }
                }
                found
            }
        };
        match got {
            Ok(b) => {
                if let Some(t) = &tmpl {
                    let v: Value = serde_json::from_slice(&b).map_err(|e| {
                        CliError::Msg(format!("invalid json from daemon for {n}: {e}"))
                    })?;
                    text_out.push_str(&t.execute(&v)?);
                    text_out.push('\n');
                } else {
                    raws.push(b);
                }
            }
            Err(m) => errs.push(m),
        }
    }
    if tmpl.is_some() {
        super::out(&text_out);
    } else {
        let mut joined = Vec::new();
        joined.push(b'[');
        for (i, r) in raws.iter().enumerate() {
            if i > 0 {
                joined.push(b',');
            }
            joined.extend_from_slice(r.trim_ascii());
        }
        joined.push(b']');
        super::out(&(go_json_indent(&joined, "    ") + "\n"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(CliError::Many(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indent_like_go() {
        let src =
            br#"[{"Id":"abc","Args":[],"Config":{"Labels":{},"Env":["A=1","B=\"x, y\""]},"N":1}]"#;
        let want = "[\n    {\n        \"Id\": \"abc\",\n        \"Args\": [],\n        \"Config\": {\n            \"Labels\": {},\n            \"Env\": [\n                \"A=1\",\n                \"B=\\\"x, y\\\"\"\n            ]\n        },\n        \"N\": 1\n    }\n]";
        assert_eq!(go_json_indent(src, "    "), want);
        assert_eq!(go_json_indent(b"[]", "    "), "[]");
        assert_eq!(
            go_json_indent(b"{ \"a\" : [ 1 , 2 ] }", "  "),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}"
        );
    }
}
