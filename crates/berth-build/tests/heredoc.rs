//! BuildKit's heredoc extraction cases (parser_heredoc_test.go, TestParseExtractsHeredoc),
//! ported: the same Dockerfile, the same expected heredocs per instruction.

use berth_build::dockerfile::parser;

struct H {
    name: &'static str,
    content: &'static str,
    expand: bool,
    chomp: bool,
    fd: u32,
}

const DOCKERFILE: &str = "
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN \"<<NOHEREDOC\"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
\"foo\"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t";

#[test]
fn heredocs_match_buildkit() {
    let expected: Vec<Option<Vec<H>>> = vec![
        None,
        None,
        None,
        None,
        Some(vec![H {
            name: "EMPTY",
            content: "",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "EMPTY2",
            content: "",
            expand: true,
            chomp: false,
            fd: 3,
        }]),
        None,
        Some(vec![H {
            name: "INDENT",
            content: "\tfoo\n\tbar\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "UNINDENT",
            content: "\tbaz\n\tquux\n",
            expand: true,
            chomp: true,
            fd: 0,
        }]),
        Some(vec![H {
            name: "UNINDENT2",
            content: "\tbaz\n\tquux\n",
            expand: true,
            chomp: true,
            fd: 0,
        }]),
        Some(vec![H {
            name: "EXPAND",
            content: "\texpand $NAME\n",
            expand: true,
            chomp: true,
            fd: 0,
        }]),
        Some(vec![H {
            name: "NOEXPAND",
            content: "\tdon't expand $NAME\n",
            expand: false,
            chomp: true,
            fd: 0,
        }]),
        Some(vec![H {
            name: "COPY",
            content: "echo hello world\necho foo bar\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "COMMENT",
            content: "# internal comment\necho hello world\necho foo bar # trailing comment\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "MOUNT",
            content: "echo hello\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![
            H {
                name: "FILE1",
                content: "content 1\n",
                expand: true,
                chomp: false,
                fd: 0,
            },
            H {
                name: "FILE2",
                content: "content 2\n",
                expand: true,
                chomp: false,
                fd: 0,
            },
        ]),
        Some(vec![H {
            name: "EOF",
            content: "\"foo\"\n'bar'\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![
            H {
                name: "X",
                content: "Y\n",
                expand: true,
                chomp: false,
                fd: 0,
            },
            H {
                name: "Y",
                content: "X\n",
                expand: true,
                chomp: false,
                fd: 0,
            },
        ]),
        Some(vec![H {
            name: "COMPLEX",
            content: "print('hello world')\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "file.txt",
            content: "hello world\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "eof",
            content: "echo foo\n",
            expand: false,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "eo'f",
            content: "echo foo\n",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "eo'f",
            content: "echo foo\n",
            expand: false,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "one two",
            content: "echo bar\n",
            expand: false,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "$EOF",
            content: "",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "EOF",
            content: "",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
        Some(vec![H {
            name: "EOF",
            content: "",
            expand: true,
            chomp: false,
            fd: 0,
        }]),
    ];
    let df = parser::parse(DOCKERFILE).expect("heredoc corpus parses");
    assert_eq!(df.children.len(), expected.len() + 1, "instruction count");
    let mut failures = Vec::new();
    for (i, want) in expected.iter().enumerate() {
        let child = &df.children[i + 1];
        let got: Vec<(String, String, bool, bool, u32)> = child
            .heredocs
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    h.content.clone(),
                    h.expand,
                    h.chomp,
                    h.file_descriptor,
                )
            })
            .collect();
        let want: Vec<(String, String, bool, bool, u32)> = want
            .as_ref()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            h.content.to_string(),
                            h.expand,
                            h.chomp,
                            h.fd,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if got != want {
            failures.push(format!(
                "instruction {} (line {}: {:?}): want {want:?}, got {got:?}",
                i + 1,
                child.start_line,
                child.original
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
