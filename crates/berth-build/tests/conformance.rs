//! BuildKit's own parser and shell-lexer corpus, run against berth's implementation.
//!
//! The corpus lives in `tests/data/dockerfile-parser/` (a verbatim copy of BuildKit's test
//! data, see its README). Every case is checked and reported separately; each test fails at
//! the end with the list of failing cases, so one run shows every regression.

use std::fs;
use std::path::{Path, PathBuf};

use berth_build::dockerfile::parser;
use berth_build::shell::Lex;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dockerfile-parser")
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn report(what: &str, checked: usize, failures: Vec<String>) {
    assert!(checked > 0, "{what}: no cases found");
    assert!(
        failures.is_empty(),
        "{what}: {} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn positive_dumps_are_byte_identical() {
    let dirs = sorted_dirs(&corpus().join("testfiles"));
    assert_eq!(dirs.len(), 33, "expected BuildKit's 33 positive cases");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let src = fs::read(dir.join("Dockerfile")).expect("Dockerfile");
        let src = String::from_utf8(src).expect("corpus is UTF-8");
        let want = fs::read_to_string(dir.join("result")).expect("result");
        match parser::parse(&src) {
            Ok(df) => {
                let got = df.dump() + "\n";
                if got != want {
                    failures.push(format!(
                        "case {name}: dump differs\n--- want\n{want}--- got\n{got}"
                    ));
                }
            }
            Err(e) => failures.push(format!("case {name}: parse failed: {e}")),
        }
    }
    report("testfiles", dirs.len(), failures);
}

#[test]
fn negative_cases_are_rejected() {
    let dirs = sorted_dirs(&corpus().join("testfiles-negative"));
    assert_eq!(dirs.len(), 4, "expected BuildKit's 4 negative cases");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let src = fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        if let Ok(df) = parser::parse(&src) {
            failures.push(format!(
                "case {name}: parsed but must fail; dump:\n{}",
                df.dump()
            ));
        }
    }
    report("testfiles-negative", dirs.len(), failures);
}

#[test]
fn negative_cases_use_docker_wording() {
    for name in ["empty_dockerfile", "only_comments"] {
        let src = fs::read_to_string(
            corpus()
                .join("testfiles-negative")
                .join(name)
                .join("Dockerfile"),
        )
        .expect("Dockerfile");
        let err = parser::parse(&src).expect_err(name);
        assert!(
            err.to_string().ends_with("file with no instructions"),
            "case {name}: unexpected error {err}"
        );
    }
}

#[test]
fn line_numbers_match_buildkit() {
    let src = fs::read_to_string(corpus().join("testfile-line/Dockerfile")).expect("Dockerfile");
    let df = parser::parse(&src).expect("testfile-line parses");
    assert_eq!(df.start_line, 5, "AST start line");
    assert_eq!(df.end_line, 31, "AST end line");
    let got: Vec<(usize, usize)> = df
        .children
        .iter()
        .map(|c| (c.start_line, c.end_line))
        .collect();
    assert_eq!(
        got,
        vec![(5, 5), (11, 12), (17, 31)],
        "children (start, end) lines"
    );
}

fn env_var_env() -> Vec<(String, String)> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn env_var_test_rows() {
    let text = fs::read_to_string(corpus().join("shell/envVarTest")).expect("envVarTest");
    let lex = Lex::new('\\');
    let env = env_var_env();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(
            parts.len(),
            3,
            "envVarTest:{lineno}: malformed row {line:?}"
        );
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        assert!(
            matches!(platform, "A" | "U" | "W"),
            "envVarTest:{lineno}: bad platform {platform:?}"
        );
        if platform == "W" {
            continue;
        }
        checked += 1;
        let got = lex.process_word(source, &env);
        match (expected, got) {
            ("error", Ok(w)) => failures.push(format!(
                "envVarTest:{lineno} input {source:?}: expected an error, got {w:?}"
            )),
            ("error", Err(_)) => {}
            (want, Ok(w)) if w == want => {}
            (want, Ok(w)) => failures.push(format!(
                "envVarTest:{lineno} input {source:?}: want {want:?}, got {w:?}"
            )),
            (want, Err(e)) => failures.push(format!(
                "envVarTest:{lineno} input {source:?}: want {want:?}, got error {e}"
            )),
        }
    }
    report("envVarTest", checked, failures);
}

#[test]
fn words_test_rows() {
    let text = fs::read_to_string(corpus().join("shell/wordsTest")).expect("wordsTest");
    let lex = Lex::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        if line.starts_with('#') {
            continue;
        }
        if let Some(kv) = line.strip_prefix("ENV ") {
            let (k, v) = kv
                .trim_start_matches(' ')
                .split_once('=')
                .expect("ENV k=v line");
            env.push((k.to_owned(), v.to_owned()));
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 2, "wordsTest:{lineno}: malformed row {line:?}");
        // Like BuildKit's test: only leading spaces are trimmed from the expectation, so
        // trailing spaces inside quotes are significant.
        let (source, expected) = (parts[0].trim(), parts[1].trim_start_matches(' '));
        checked += 1;
        let got = lex.process_words(source, &env);
        match (expected, got) {
            ("error", Ok(w)) => failures.push(format!(
                "wordsTest:{lineno} input {source:?}: expected an error, got {w:?}"
            )),
            ("error", Err(_)) => {}
            (want, Ok(w)) => {
                let want: Vec<&str> = want.split(',').collect();
                if w != want {
                    failures.push(format!(
                        "wordsTest:{lineno} input {source:?}: want {want:?}, got {w:?}"
                    ));
                }
            }
            (want, Err(e)) => failures.push(format!(
                "wordsTest:{lineno} input {source:?}: want {want:?}, got error {e}"
            )),
        }
    }
    report("wordsTest", checked, failures);
}
