//! Go-compatible string quoting (`strconv.Quote` and `%q`).
//!
//! BuildKit's parser test corpus compares AST dumps produced with Go's `strconv.Quote`, and
//! BuildKit's error messages quote user input with `%q`. To be byte-identical with both we
//! reproduce Go's rules here: `\"` and `\\`, the C escapes `\a \b \f \n \r \t \v`, other
//! non-printable code points below U+0080 (and DEL) as `\xNN`, other non-printable code points
//! as `\uNNNN` / `\UNNNNNNNN`, and everything Go calls printable literally.
//!
//! Go's `unicode.IsPrint` is "graphic (L, M, N, P, S) or U+0020". Rust's standard library has
//! no general-category table, so [`is_go_printable`] classifies by the categories that are
//! *not* printable and that matter in practice: controls (Cc), format characters (Cf),
//! separators other than the ASCII space (Zs, Zl, Zp), surrogates (impossible in a `char`) and
//! private use (Co). Unassigned code points (Cn) are treated as printable, where Go would escape
//! them; no Dockerfile in the corpus or in the wild depends on that difference.

/// Quotes `s` exactly like Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Formats a string slice like Go's `fmt.Sprintf("%q", []string{...})`:
/// `["a" "b"]`.
pub fn quote_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&quote(item));
    }
    out.push(']');
    out
}

/// Approximates Go's `unicode.IsPrint` (see the module docs for the one known difference).
pub fn is_go_printable(c: char) -> bool {
    let cp = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() {
        return false;
    }
    // Separators other than U+0020 (Zs, Zl, Zp) are not printable in Go.
    if c.is_whitespace() || matches!(cp, 0x2028 | 0x2029) {
        return false;
    }
    // Zs code points that are not White_Space in Rust's table.
    if matches!(cp, 0x180e) {
        return false;
    }
    // Format characters (Cf).
    if matches!(
        cp,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    ) {
        return false;
    }
    // Private use (Co) and noncharacters.
    if matches!(cp, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd) {
        return false;
    }
    !matches!(cp, 0xfffe | 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("abc"), r#""abc""#);
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(quote("♥☃한국어"), "\"♥☃한국어\"");
        assert_eq!(quote("\u{a0}\u{200b}"), r#""\u00a0\u200b""#);
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn quotes_lists_like_go() {
        let v = vec!["--user=me".to_string(), "--doit=true".to_string()];
        assert_eq!(quote_list(&v), r#"["--user=me" "--doit=true"]"#);
    }
}
