//! BuildKit's TestProcessWithMatches cases (shell/lex_test.go), ported: the result of
//! ProcessWordWithMatches and the sets of matched and unmatched variables, including the
//! `%`, `#` and `/` pattern forms.

use std::collections::BTreeSet;

use berth_build::shell::Lex;

struct Case {
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// `None`: the word must be rejected.
    expected: Option<&'static str>,
    matched: &'static [&'static str],
    unmatched: &'static [&'static str],
}

#[test]
fn process_with_matches_like_buildkit() {
    let cases = [
        Case {
            input: "x",
            env: &[("DUMMY", "dummy")],
            expected: Some("x"),
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "x ${UNUSED}",
            env: &[("DUMMY", "dummy")],
            expected: Some("x "),
            matched: &[],
            unmatched: &["UNUSED"],
        },
        Case {
            input: "x ${FOO}",
            env: &[("FOO", "y")],
            expected: Some("x y"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some("xxx  ccc"),
            matched: &["FOO", "BAR"],
            unmatched: &["BAZ"],
        },
        Case {
            input: "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some("xxx bbb ccc"),
            matched: &["FOO", "BAR"],
            unmatched: &["BAZ"],
        },
        Case {
            input: "${FOO:-}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some("xxx"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO:-}",
            env: &[],
            expected: Some(""),
            matched: &[],
            unmatched: &["FOO"],
        },
        Case {
            input: "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some("aaa bbb "),
            matched: &["FOO", "BAR"],
            unmatched: &["BAZ"],
        },
        Case {
            input: "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some("aaa  "),
            matched: &["FOO", "BAR"],
            unmatched: &["BAZ"],
        },
        Case {
            input: "${FOO?aaa}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some("xxx"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${BAR?bbb}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some(""),
            matched: &["BAR"],
            unmatched: &[],
        },
        Case {
            input: "${BAZ?ccc}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: None,
            matched: &[],
            unmatched: &["BAZ"],
        },
        Case {
            input: "${FOO:?aaa}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: Some("xxx"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${BAR:?bbb}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${BAZ:?ccc}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: None,
            matched: &[],
            unmatched: &["BAZ"],
        },
        Case {
            input: "${BAZ:?}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: None,
            matched: &[],
            unmatched: &["BAZ"],
        },
        Case {
            input: "${FOO=aaa}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO=:aaa}",
            env: &[("FOO", "xxx"), ("BAR", "")],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO=}",
            env: &[],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            env: &[("FOO", "()[]{}^$.*?|\\x")],
            expected: Some("x"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO%%\\**}",
            env: &[("FOO", "xx**")],
            expected: Some("xx"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO#*x*y}",
            env: &[("FOO", "xxyy")],
            expected: Some("y"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO#*}",
            env: &[("FOO", "xxyy")],
            expected: Some("xxyy"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO#$BAR}",
            env: &[("FOO", "xxyy"), ("BAR", "x")],
            expected: Some("xyy"),
            matched: &["FOO", "BAR"],
            unmatched: &[],
        },
        Case {
            input: "${FOO#$BAR}",
            env: &[("FOO", "xxyy"), ("BAR", "")],
            expected: Some("xxyy"),
            matched: &["FOO", "BAR"],
            unmatched: &[],
        },
        Case {
            input: "${FOO#}",
            env: &[("FOO", "xxyy")],
            expected: Some("xxyy"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO##*x}",
            env: &[("FOO", "xxyy")],
            expected: Some("yy"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO##}",
            env: &[("FOO", "xxyy")],
            expected: Some("xxyy"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO#?\\?}",
            env: &[("FOO", "???y")],
            expected: Some("?y"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${ABC:-.}${FOO%x}${ABC:-.}",
            env: &[("FOO", "xxyy")],
            expected: Some(".xxyy."),
            matched: &["FOO"],
            unmatched: &["ABC"],
        },
        Case {
            input: "${FOO%%\\**\\*}",
            env: &[("FOO", "a***yy*")],
            expected: Some("a"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO%}",
            env: &[("FOO", "xxyy")],
            expected: Some("xxyy"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO%%$BAR}",
            env: &[("FOO", "xxyy"), ("BAR", "")],
            expected: Some("xxyy"),
            matched: &["FOO", "BAR"],
            unmatched: &[],
        },
        Case {
            input: "${FOO:#}",
            env: &[],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO:##}",
            env: &[],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO:%}",
            env: &[],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO:%%}",
            env: &[],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            env: &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            expected: Some("/foo.*/*.txt - /foo..*.txt"),
            matched: &["FOO", "NEEDLE"],
            unmatched: &[],
        },
        Case {
            input: "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            env: &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            expected: Some("/tmp/bar.txt - /bar.txt"),
            matched: &["FOO", "NEEDLE"],
            unmatched: &[],
        },
        Case {
            input: "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            env: &[
                ("FOO", "/a/foo/b/c.txt"),
                ("NEEDLE", "/?/"),
                ("REPLACEMENT", "/"),
            ],
            expected: Some("/foo/b/c.txt - /foo/c.txt"),
            matched: &["FOO", "NEEDLE", "REPLACEMENT"],
            unmatched: &[],
        },
        Case {
            input: "${FOO/$NEEDLE/$REPLACEMENT}",
            env: &[
                ("FOO", "http://google.de"),
                ("NEEDLE", "http://"),
                ("REPLACEMENT", "https://"),
            ],
            expected: Some("https://google.de"),
            matched: &["FOO", "NEEDLE", "REPLACEMENT"],
            unmatched: &[],
        },
        Case {
            input: "${FOO//\\//\\/}",
            env: &[("FOO", "/tmp/foo.txt")],
            expected: Some("\\/tmp\\/foo.txt"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO/$BAR/ww}",
            env: &[("FOO", "xxyy"), ("BAR", "")],
            expected: Some("wwxxyy"),
            matched: &["FOO", "BAR"],
            unmatched: &[],
        },
        Case {
            input: "${FOO//ww}",
            env: &[("FOO", "xxyy")],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO//}",
            env: &[("FOO", "xxyy")],
            expected: None,
            matched: &[],
            unmatched: &[],
        },
        Case {
            input: "${FOO///}",
            env: &[("FOO", "xxyy")],
            expected: Some("xxyy"),
            matched: &["FOO"],
            unmatched: &[],
        },
        Case {
            input: "${FOO///}",
            env: &[],
            expected: Some(""),
            matched: &[],
            unmatched: &["FOO"],
        },
    ];
    let lex = Lex::new('\\');
    let mut failures = Vec::new();
    for c in &cases {
        let env: Vec<(String, String)> = c
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = lex.process_word_with_matches(c.input, &env);
        match (c.expected, got) {
            (None, Ok(r)) => failures.push(format!(
                "{:?}: expected an error, got {:?}",
                c.input, r.result
            )),
            (None, Err(_)) => {}
            (Some(want), Err(e)) => {
                failures.push(format!("{:?}: want {want:?}, got error {e}", c.input))
            }
            (Some(want), Ok(r)) => {
                let matched: BTreeSet<String> = c.matched.iter().map(|s| s.to_string()).collect();
                let unmatched: BTreeSet<String> =
                    c.unmatched.iter().map(|s| s.to_string()).collect();
                if r.result != want || r.matched != matched || r.unmatched != unmatched {
                    failures.push(format!(
                        "{:?}: want {want:?} matched {matched:?} unmatched {unmatched:?}, got {:?} matched {:?} unmatched {:?}",
                        c.input, r.result, r.matched, r.unmatched
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
