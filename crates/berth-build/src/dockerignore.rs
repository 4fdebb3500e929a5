//! `.dockerignore`: reading the file and matching context paths against it, with docker's
//! rules (moby/patternmatcher and its `ignorefile` reader).
//!
//! Reading: lines starting with `#` are comments; each pattern is trimmed, a leading `!`
//! marks an exception, the pattern is cleaned like Go's `filepath.Clean` and a leading `/` is
//! dropped (patterns are always relative to the context root).
//!
//! Matching: patterns are checked in order and the *last* one that matches decides (`!`
//! re-includes). `*` and `?` do not cross `/`; `**` matches any number of directories; `[...]`
//! is a character class; `\` escapes. A pattern also matches a path when it matches one of the
//! path's parent directories of the same depth (so `docs` excludes `docs/a/b`). Patterns are
//! translated to regular expressions exactly as patternmatcher does, with its shortcuts for
//! plain prefix (`dir/**`), suffix (`**/name`) and exact patterns.

use std::path::{Path, PathBuf};

/// A pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    #[error("syntax error in pattern: {pattern}")]
    BadPattern { pattern: String },
}

/// Reads `.dockerignore` text into patterns (exceptions keep their `!`).
pub fn read_ignore_file(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push(cleaned);
    }
    out
}

/// The ignore files to try for a Dockerfile, in order: `<Dockerfile>.dockerignore` next to
/// the Dockerfile (BuildKit's per-Dockerfile ignore file), then `.dockerignore` at the root
/// of the context.
pub fn dockerignore_candidates(context: &Path, dockerfile: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let df = if dockerfile.is_absolute() {
        dockerfile.to_path_buf()
    } else {
        context.join(dockerfile)
    };
    if let Some(name) = df.file_name() {
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        out.push(df.with_file_name(n));
    }
    out.push(context.join(".dockerignore"));
    out
}

/// The first ignore file that exists for `dockerfile` in `context`, if any.
pub fn find_dockerignore(context: &Path, dockerfile: &Path) -> Option<PathBuf> {
    dockerignore_candidates(context, dockerfile)
        .into_iter()
        .find(|p| p.is_file())
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for elem in path.split('/') {
        match elem {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(p) if *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            e => parts.push(e),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir`.
fn dir_of(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean_path(&path[..=i]),
        None => ".".to_owned(),
    }
}

#[derive(Debug, Clone)]
enum MatchType {
    Exact,
    /// `dir/**`: the text before `/**`.
    Prefix(String),
    /// `**/x` or `**x`: the text after `**`.
    Suffix(String),
    Regex(regex::Regex),
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    dirs: usize,
    exclusion: bool,
    kind: MatchType,
}

impl Pattern {
    /// The cleaned pattern text, without `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` exception.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix(p) => path.starts_with(p.as_str()),
            MatchType::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            MatchType::Regex(re) => re.is_match(path),
        }
    }
}

/// Validates a pattern the way `filepath.Match(p, ".")` does: classes must close and an
/// escape must not end the pattern.
fn validate(p: &str) -> bool {
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return false;
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut first = true;
                loop {
                    match chars.get(i) {
                        None => return false,
                        Some(']') if !first => {
                            i += 1;
                            break;
                        }
                        Some(']') => return false,
                        Some('\\') => {
                            if i + 1 >= chars.len() {
                                return false;
                            }
                            i += 2;
                        }
                        Some('-') if first => return false,
                        Some(_) => i += 1,
                    }
                    first = false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

fn compile(cleaned: &str) -> Result<MatchType, IgnoreError> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let bad = || IgnoreError::BadPattern {
        pattern: cleaned.to_owned(),
    };
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let chars: Vec<char> = cleaned.chars().collect();
    let mut pos = 0;
    let mut i = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        if ch == '*' {
            if chars.get(pos) == Some(&'*') {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos >= chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if i == 0 {
                    detected = Detected::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            detected = Detected::Regex;
        } else if ".+()|{}$".contains(ch) {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            match chars.get(pos) {
                Some(&n) => {
                    pos += 1;
                    re.push('\\');
                    re.push(n);
                    detected = Detected::Regex;
                }
                None => re.push('\\'),
            }
        } else if ch == '[' || ch == ']' {
            re.push(ch);
            detected = Detected::Regex;
        } else {
            re.push(ch);
        }
        i += 1;
    }
    Ok(match detected {
        Detected::Exact => MatchType::Exact,
        Detected::Prefix => MatchType::Prefix(cleaned[..cleaned.len() - 2].to_owned()),
        Detected::Suffix => MatchType::Suffix(cleaned[2..].to_owned()),
        Detected::Regex => {
            re.push('$');
            MatchType::Regex(regex::Regex::new(&re).map_err(|_| bad())?)
        }
    })
}

/// An ordered list of patterns; the last matching pattern decides.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compiles patterns (as returned by [`read_ignore_file`] or given on an instruction's
    /// `--exclude`).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut pm = PatternMatcher::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean_path(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(IgnoreError::IllegalExclusion);
                }
                exclusion = true;
                p = rest.to_owned();
                pm.exclusions = true;
            }
            if !validate(&p) {
                return Err(IgnoreError::BadPattern { pattern: p });
            }
            let kind = compile(&p)?;
            pm.patterns.push(Pattern {
                dirs: p.split('/').count(),
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(pm)
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` exception (a walker then cannot skip excluded
    /// directories wholesale).
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `file` (relative, `/`-separated) is excluded: patterns are tried against the
    /// path and against its parent directory at the pattern's depth.
    pub fn matches(&self, file: &str) -> bool {
        let parent = dir_of(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            // Once matched, only exceptions can change the answer, and vice versa.
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(file);
            if !m && parent != "." && p.dirs <= parent_dirs.len() {
                m = p.matches(&parent_dirs[..p.dirs].join("/"));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Like [`Self::matches`], but a pattern also matches when it matches any ancestor
    /// directory of `file` (patternmatcher's `MatchesOrParentMatches`, used by BuildKit).
    pub fn matches_or_parent_matches(&self, file: &str) -> bool {
        let parent = dir_of(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(file);
            if !m && parent != "." {
                m = (1..=parent_dirs.len()).any(|n| p.matches(&parent_dirs[..n].join("/")));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// Whether `file` is excluded from the build context by `patterns`, the way the docker CLI
/// and BuildKit decide it (`MatchesOrParentMatches`): the path is cleaned first and the
/// context root itself is never excluded.
pub fn is_excluded<S: AsRef<str>>(file: &str, patterns: &[S]) -> Result<bool, IgnoreError> {
    let pm = PatternMatcher::new(patterns)?;
    let file = clean_path(file);
    if file == "." {
        return Ok(false);
    }
    Ok(pm.matches_or_parent_matches(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from moby/patternmatcher's TestMatches (which checks MatchesOrParentMatches).
    #[test]
    fn patternmatcher_cases() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
        ];
        let mut failures = Vec::new();
        for (pattern, text, want) in cases {
            let pm = PatternMatcher::new(&[*pattern]).expect("pattern compiles");
            if pm.matches_or_parent_matches(text) != *want {
                failures.push(format!("pattern={pattern:?} text={text:?} want {want}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let pats = ["docs", "!docs/README.md"];
        assert!(!is_excluded("docs/README.md", &pats).expect("ok"));
        assert!(is_excluded("docs/other.md", &pats).expect("ok"));
        let pats = ["*.md", "!README*.md", "README-secret.md"];
        assert!(is_excluded("CHANGELOG.md", &pats).expect("ok"));
        assert!(!is_excluded("README.md", &pats).expect("ok"));
        assert!(is_excluded("README-secret.md", &pats).expect("ok"));
        assert!(!is_excluded(".", &["**"]).expect("ok"));
        assert!(is_excluded("./docs/a", &["docs"]).expect("ok"));
    }

    #[test]
    fn parent_directories_match() {
        let pm = PatternMatcher::new(&["docs"]).expect("ok");
        assert!(pm.matches("docs/a/b/c"));
        let pm = PatternMatcher::new(&["a/b"]).expect("ok");
        assert!(pm.matches("a/b/c/d"));
        assert!(!pm.matches("x/a/b"));
        let pm = PatternMatcher::new(&["*/b"]).expect("ok");
        assert!(pm.matches_or_parent_matches("a/b/c/d"));
    }

    #[test]
    fn malformed_patterns() {
        assert_eq!(
            PatternMatcher::new(&["!"]).expect_err("bare !"),
            IgnoreError::IllegalExclusion
        );
        assert!(PatternMatcher::new(&["["]).is_err());
        assert!(PatternMatcher::new(&["a[b"]).is_err());
        assert!(PatternMatcher::new(&["a\\"]).is_err());
    }

    #[test]
    fn reading_the_file() {
        let text =
            "\u{feff}# comment\n\n  node_modules  \n/build/\n!  /build/keep \n./a/../b\n*.log\n!\n";
        assert_eq!(
            read_ignore_file(text),
            vec![
                "node_modules".to_string(),
                "build".into(),
                "!build/keep".into(),
                "b".into(),
                "*.log".into(),
                "!".into(),
            ]
        );
    }

    #[test]
    fn clean_like_go() {
        for (i, o) in [
            ("", "."),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("a//b/./c/", "a/b/c"),
            ("/", "/"),
            ("../../x", "../../x"),
        ] {
            assert_eq!(clean_path(i), o, "clean({i:?})");
        }
    }

    #[test]
    fn ignore_file_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = dir.path();
        std::fs::create_dir(ctx.join("sub")).expect("mkdir");
        assert_eq!(
            find_dockerignore(ctx, Path::new("sub/app.Dockerfile")),
            None
        );
        std::fs::write(ctx.join(".dockerignore"), "x\n").expect("write");
        assert_eq!(
            find_dockerignore(ctx, Path::new("sub/app.Dockerfile")),
            Some(ctx.join(".dockerignore"))
        );
        std::fs::write(ctx.join("sub/app.Dockerfile.dockerignore"), "y\n").expect("write");
        assert_eq!(
            find_dockerignore(ctx, Path::new("sub/app.Dockerfile")),
            Some(ctx.join("sub/app.Dockerfile.dockerignore"))
        );
    }
}
