//! The syntax-level Dockerfile parser: text to a list of instruction nodes.
//!
//! This is the stage BuildKit calls `parser.Parse`, before instructions are typed and before
//! variables are expanded. It owns:
//!
//! - parser directives (`# syntax=`, `# escape=`, `# check=`), accepted only as the first
//!   lines of the file, each at most once; only `escape` changes parsing;
//! - line continuations with the escape token, comments and empty lines inside them;
//! - splitting each logical line into the instruction name, its `--flags` and its arguments,
//!   with per-instruction argument rules (JSON array or shell form, whitespace-separated words,
//!   `key=value` pairs, the legacy `ENV key value`, `ONBUILD` nesting);
//! - heredocs (`<<EOF`, `<<-EOF`, quoted delimiters, several per line) for RUN, COPY and ADD;
//! - start and end line of every node.
//!
//! Unknown instruction names are *not* an error here, exactly as in BuildKit: the syntax tree
//! keeps them (with one empty argument) and [`super::instructions`] rejects them with
//! `unknown instruction: NAME`. Errors carry the line they belong to.
//!
//! The tree dumps in BuildKit's s-expression format ([`Dockerfile::dump`]) so that BuildKit's
//! own parser corpus can be compared byte for byte.

use crate::goquote;
use crate::shell::{EmptyEnv, Lex};

/// The default escape token.
pub const DEFAULT_ESCAPE_TOKEN: char = '\\';

/// A parse failure with the lines it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Dockerfile:{line}: file with no instructions")]
    NoInstructions { line: usize },
    #[error("Dockerfile:{line}: only one {name} parser directive can be used")]
    DuplicateDirective { line: usize, name: String },
    #[error("Dockerfile:{line}: invalid escape token '{value}' does not match ` or \\")]
    InvalidEscape { line: usize, value: String },
    #[error("Dockerfile:{line}: {command} must have two arguments")]
    MissingValue { line: usize, command: String },
    #[error("Dockerfile:{line}: Syntax error - can't find = in {}. Must be of the form: name=value", goquote::quote(.word))]
    MissingEquals { line: usize, word: String },
    #[error(
        "Dockerfile:{line}: when using JSON array syntax, arrays must be comprised of strings only"
    )]
    NotStringArray { line: usize },
    #[error("Dockerfile:{line}: unterminated heredoc")]
    UnterminatedHeredoc { line: usize },
    #[error("Dockerfile:{line}: {source}")]
    Heredoc {
        line: usize,
        source: crate::shell::ShellError,
    },
}

impl ParseError {
    /// The (first) line of the Dockerfile the error belongs to; 1-based, 0 for an empty file.
    pub fn line(&self) -> usize {
        match self {
            ParseError::NoInstructions { line }
            | ParseError::DuplicateDirective { line, .. }
            | ParseError::InvalidEscape { line, .. }
            | ParseError::MissingValue { line, .. }
            | ParseError::MissingEquals { line, .. }
            | ParseError::NotStringArray { line }
            | ParseError::UnterminatedHeredoc { line }
            | ParseError::Heredoc { line, .. } => *line,
        }
    }

    fn at(kind: LineError, line: usize) -> ParseError {
        match kind {
            LineError::MissingValue(command) => ParseError::MissingValue { line, command },
            LineError::MissingEquals(word) => ParseError::MissingEquals { line, word },
            LineError::NotStringArray => ParseError::NotStringArray { line },
        }
    }
}

/// Errors of a single logical line, before its position is known.
enum LineError {
    MissingValue(String),
    MissingEquals(String),
    NotStringArray,
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (also the file name for COPY/ADD).
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub file_descriptor: u32,
    /// False when any part of the delimiter was quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body lines (and the delimiter line).
    pub chomp: bool,
    /// The body, every line with its newline, without the delimiter line.
    pub content: String,
}

/// One argument of a node: a word, or a nested instruction (ONBUILD's trigger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Word(String),
    Child(Box<Node>),
}

/// One instruction in the syntax tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction name as written (`run`, `RUN`, `Run` ...).
    pub value: String,
    /// The arguments after the flags, shaped by the instruction's rules.
    pub args: Vec<Arg>,
    /// The `--flag[=value]` words before the arguments.
    pub flags: Vec<String>,
    /// True when the arguments came from a JSON array.
    pub json: bool,
    /// Heredocs, in the order their delimiters appear on the line.
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined) that produced the node.
    pub original: String,
    /// 1-based first line of the instruction.
    pub start_line: usize,
    /// 1-based last line of the instruction (including heredoc bodies).
    pub end_line: usize,
    /// The comment lines directly above the instruction.
    pub prev_comment: Vec<String>,
}

impl Node {
    /// The arguments as strings, ONBUILD's trigger flattened to its name and arguments
    /// (BuildKit's `nodeArgs`).
    pub fn arg_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.args {
            match a {
                Arg::Word(w) => out.push(w.clone()),
                Arg::Child(c) => {
                    out.push(c.value.clone());
                    out.extend(c.arg_strings());
                }
            }
        }
        out
    }

    /// The nested instruction of ONBUILD, if any.
    pub fn child(&self) -> Option<&Node> {
        self.args.iter().find_map(|a| match a {
            Arg::Child(c) => Some(&**c),
            Arg::Word(_) => None,
        })
    }

    /// BuildKit's `Node.Dump` for one instruction: `(name ["--flags"] "arg" ...)` without the
    /// parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.value.to_lowercase();
        if !self.flags.is_empty() {
            s.push(' ');
            s.push_str(&goquote::quote_list(&self.flags));
        }
        for a in &self.args {
            s.push(' ');
            match a {
                Arg::Word(w) => s.push_str(&goquote::quote(w)),
                Arg::Child(c) => {
                    s.push('(');
                    s.push_str(&c.dump());
                    s.push(')');
                }
            }
        }
        s.trim().to_owned()
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = if self.value.eq_ignore_ascii_case("onbuild") {
            match self.child() {
                Some(c) => c,
                None => return false,
            }
        } else {
            self
        };
        let name = node.value.to_ascii_lowercase();
        matches!(name.as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// A parser directive found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased name: `syntax`, `escape` or `check`.
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// A non-fatal finding (BuildKit prints these as `[WARNING]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub short: String,
    pub line: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub children: Vec<Node>,
    pub directives: Vec<Directive>,
    pub escape_token: char,
    pub warnings: Vec<Warning>,
    /// Line of the first instruction.
    pub start_line: usize,
    /// Last line of the last instruction.
    pub end_line: usize,
}

impl Dockerfile {
    /// BuildKit's `AST.Dump()`: one `(instruction ...)` per line, no trailing newline.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            s.push('(');
            s.push_str(&c.dump());
            s.push_str(")\n");
        }
        s.trim().to_owned()
    }
}

/// State of the directive scanner: directives are only valid before anything else.
struct Directives {
    escape: char,
    done: bool,
    line: usize,
    found: Vec<Directive>,
}

impl Directives {
    /// Looks at one (left-trimmed) line; returns whether it was a directive.
    fn possible_directive(&mut self, line: &str) -> Result<bool, ParseError> {
        self.line += 1;
        if self.done {
            return Ok(false);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(false);
        };
        let rest = rest.trim_start();
        let Some((name, value)) = parse_directive_line(rest) else {
            self.done = true;
            return Ok(false);
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(ParseError::DuplicateDirective {
                line: self.line,
                name,
            });
        }
        if name == "escape" {
            self.escape = match value.as_str() {
                "`" => '`',
                "\\" => '\\',
                _ => {
                    return Err(ParseError::InvalidEscape {
                        line: self.line,
                        value,
                    })
                }
            };
        }
        self.found.push(Directive {
            name,
            value,
            line: self.line,
        });
        Ok(true)
    }
}

/// Matches `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn parse_directive_line(s: &str) -> Option<(String, String)> {
    let mut chars = s.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_end = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let name = &s[..name_end];
    let rest = s[name_end..].trim_start();
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_owned(), value.to_owned()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Removes a trailing line-continuation token. Returns the line and whether the logical line
/// ends here. The token continues the line only when it is the last non-blank character and
/// is not itself escaped (BuildKit's regex `([^\\])\\[ \t]*$|^\\[ \t]*$`).
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line.to_owned(), true);
    };
    match before.chars().last() {
        None => (String::new(), false),
        Some(c) if c == escape => (line.to_owned(), true),
        Some(_) => (before.to_owned(), false),
    }
}

/// Splits `src` into lines that keep their `\n`, like BuildKit's scanner.
fn split_lines(src: &str) -> Vec<&str> {
    src.split_inclusive('\n').collect()
}

/// Parses Dockerfile text into its syntax tree.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines = split_lines(src);
    let mut d = Directives {
        escape: DEFAULT_ESCAPE_TOKEN,
        done: false,
        line: 0,
        found: Vec::new(),
    };
    let mut children: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut current_line = 0usize;
    let mut i = 0usize;

    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        if is_comment(raw) {
            let comment = raw.trim_start()[1..].trim().to_owned();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment);
            }
        }
        let trimmed = trim_newline(raw).trim_start();
        let directive = d.possible_directive(trimmed)?;
        if directive {
            comments.pop();
        }
        current_line += 1;
        let processed = if is_comment(trimmed) { "" } else { trimmed };
        let start_line = current_line;
        let (first, mut end_of_line) = trim_continuation(processed, d.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut buf = first;
        let mut has_empty_continuation = false;
        while !end_of_line && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let line = trim_newline(raw);
            d.possible_directive(line)?;
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if line.trim_start().is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (part, eol) = trim_continuation(line, d.escape);
            end_of_line = eol;
            buf.push_str(&part);
        }
        if has_empty_continuation {
            warnings.push(Warning {
                short: format!("Empty continuation line found in: {buf}"),
                line: current_line,
            });
        }
        let mut node = node_from_line(&buf, d.escape, std::mem::take(&mut comments))
            .map_err(|e| ParseError::at(e, start_line))?;

        if node.can_contain_heredoc() && buf.contains("<<") {
            let heredocs = heredocs_from_line(&buf).map_err(|source| ParseError::Heredoc {
                line: start_line,
                source,
            })?;
            for mut heredoc in heredocs {
                let mut terminated = false;
                let mut content = String::new();
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    current_line += 1;
                    let mut candidate = trim_newline(raw);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::UnterminatedHeredoc { line: start_line });
                }
                heredoc.content = content;
                node.heredocs.push(heredoc);
            }
        }
        node.start_line = start_line;
        node.end_line = current_line;
        set_child_lines(&mut node);
        children.push(node);
    }

    if children.is_empty() {
        return Err(ParseError::NoInstructions { line: current_line });
    }
    Ok(Dockerfile {
        start_line: children[0].start_line,
        end_line: children[children.len() - 1].end_line,
        children,
        directives: d.found,
        escape_token: d.escape,
        warnings,
    })
}

/// Nested nodes (ONBUILD triggers) share their parent's position.
fn set_child_lines(node: &mut Node) {
    let (s, e) = (node.start_line, node.end_line);
    for a in &mut node.args {
        if let Arg::Child(c) = a {
            c.start_line = s;
            c.end_line = e;
            set_child_lines(c);
        }
    }
}

/// Splits a logical line into instruction, flags and arguments and applies the instruction's
/// argument rules.
fn node_from_line(line: &str, escape: char, comments: Vec<String>) -> Result<Node, LineError> {
    let (cmd, flags, rest) = split_command(line, escape);
    let (args, json) = match cmd.to_ascii_lowercase().as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&rest)?,
        "arg" => (words_to_args(parse_words(&rest, escape)), false),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&rest)?,
        "env" => (parse_name_val(&rest, "ENV", escape)?, false),
        "label" => (parse_name_val(&rest, "LABEL", escape)?, false),
        "expose" | "from" => (whitespace_delimited(&rest), false),
        "healthcheck" => parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (
            if rest.is_empty() {
                vec![]
            } else {
                vec![Arg::Word(rest.clone())]
            },
            false,
        ),
        "onbuild" => {
            if rest.is_empty() {
                (vec![], false)
            } else {
                let child = node_from_line(&rest, escape, Vec::new())?;
                (vec![Arg::Child(Box::new(child))], false)
            }
        }
        // Unknown instructions keep one empty argument, as BuildKit's parseIgnore does.
        _ => (vec![Arg::Word(String::new())], false),
    };
    Ok(Node {
        value: cmd,
        args,
        flags,
        json,
        heredocs: Vec::new(),
        original: line.to_owned(),
        start_line: 0,
        end_line: 0,
        prev_comment: comments,
    })
}

fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ')
}

/// Splits on runs of `[\t\v\f\r ]` into at most `n` parts (`n == 0`: unlimited), like Go's
/// `regexp.Split`.
fn split_ws(s: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if n != 0 && out.len() + 1 == n {
            out.push(rest.to_owned());
            return out;
        }
        match rest.find(is_ws) {
            None => {
                out.push(rest.to_owned());
                return out;
            }
            Some(start) => {
                out.push(rest[..start].to_owned());
                let after = &rest[start..];
                let len = after.find(|c: char| !is_ws(c)).unwrap_or(after.len());
                rest = &after[len..];
            }
        }
    }
}

fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let parts = split_ws(line.trim(), 2);
    let cmd = parts[0].clone();
    if parts.len() < 2 {
        return (cmd, Vec::new(), String::new());
    }
    let (args, flags) = extract_builder_flags(&parts[1], escape);
    (cmd, flags, args.trim().to_owned())
}

/// Takes the leading `--flag` words off `line`. A bare `--` ends the flags.
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = if at_end { '\0' } else { chars[pos].1 };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            let next_dash = chars.get(pos + 1).map(|c| c.1) == Some('-');
            if ch != '-' || !next_dash {
                return (line[chars[pos].0..].to_owned(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[chars[pos].0..].to_owned(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// Splits into words, keeping quotes and escapes (they are removed later, at expansion).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                // Unquoted, an escape keeps itself and the next character, even a quote.
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        // Inside single quotes nothing can be escaped.
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

fn words_to_args(words: Vec<String>) -> Vec<Arg> {
    words.into_iter().map(Arg::Word).collect()
}

fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<Arg>, LineError> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(vec![]);
    }
    if !words[0].contains('=') {
        // Legacy form: `ENV name value with spaces`.
        let parts = split_ws(rest, 2);
        if parts.len() < 2 {
            return Err(LineError::MissingValue(key.to_owned()));
        }
        return Ok(vec![
            Arg::Word(parts[0].clone()),
            Arg::Word(parts[1].clone()),
            Arg::Word(String::new()),
        ]);
    }
    let mut out = Vec::new();
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(LineError::MissingEquals(word));
        };
        out.push(Arg::Word(k.to_owned()));
        out.push(Arg::Word(v.to_owned()));
        out.push(Arg::Word("=".to_owned()));
    }
    Ok(out)
}

fn whitespace_delimited(rest: &str) -> Vec<Arg> {
    if rest.is_empty() {
        return vec![];
    }
    split_ws(rest, 0).into_iter().map(Arg::Word).collect()
}

/// Parses a JSON array of strings. `Ok(None)`: not a JSON array (use the shell form).
fn parse_json(rest: &str) -> Result<Option<Vec<Arg>>, LineError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest)
    else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => out.push(Arg::Word(s)),
            _ => return Err(LineError::NotStringArray),
        }
    }
    Ok(Some(out))
}

fn parse_maybe_json(rest: &str) -> Result<(Vec<Arg>, bool), LineError> {
    if rest.is_empty() {
        return Ok((vec![], false));
    }
    if let Some(args) = parse_json(rest)? {
        return Ok((args, true));
    }
    Ok((vec![Arg::Word(rest.to_owned())], false))
}

fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<Arg>, bool), LineError> {
    if let Some(args) = parse_json(rest)? {
        return Ok((args, true));
    }
    Ok((whitespace_delimited(rest), false))
}

fn parse_health_config(rest: &str) -> Result<(Vec<Arg>, bool), LineError> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((vec![], false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let (mut args, json) = parse_maybe_json(cmd)?;
    args.insert(0, Arg::Word(typ.to_owned()));
    Ok((args, json))
}

/// Parses a heredoc word such as `<<EOF`, `<<-"EOF"` or `3<<EOF`; `None` when `word` is not a
/// heredoc (BuildKit's `ParseHeredoc`).
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, crate::shell::ShellError> {
    // ^(\d*)<<(-?)\s*([^<]*)$
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start();
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd: u32 = word[..digits].parse().unwrap_or(0);

    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &EmptyEnv)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &EmptyEnv)?;
    if raw.len() != 1 {
        return Ok(None);
    }
    // If quotes disappear when quotes are processed, part of the delimiter was quoted and
    // the body must not be expanded.
    let count = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = count(&words[0]) == count(&raw[0]);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        file_descriptor: fd,
        expand,
        chomp,
        content: String::new(),
    }))
}

fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, crate::shell::ShellError> {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    // BuildKit ignores a lexing error here: such a line simply has no heredocs.
    let words = lex.process_words(line, &EmptyEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Removes leading tabs from every line of a `<<-` heredoc body.
pub fn chomp_heredoc_content(src: &str) -> String {
    src.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Dockerfile {
        parse(src).expect("parses")
    }

    #[test]
    fn heredoc_basic_and_positions() {
        let df = p("FROM busybox\nRUN <<EOF\necho hi\necho $X\nEOF\nRUN true\n");
        let run = &df.children[1];
        assert_eq!(run.heredocs.len(), 1);
        let h = &run.heredocs[0];
        assert_eq!(h.name, "EOF");
        assert!(h.expand);
        assert!(!h.chomp);
        assert_eq!(h.content, "echo hi\necho $X\n");
        assert_eq!((run.start_line, run.end_line), (2, 5));
        assert_eq!(df.children[2].start_line, 6);
    }

    #[test]
    fn heredoc_quoted_chomp_and_several() {
        let df = p("FROM x\nRUN <<-'A' 3<<\"B\" cat\n\tone\n\tA\ntwo\nB\n");
        let hs = &df.children[1].heredocs;
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[0].name, "A");
        assert!(!hs[0].expand && hs[0].chomp);
        assert_eq!(hs[0].content, "\tone\n");
        assert_eq!(chomp_heredoc_content(&hs[0].content), "one\n");
        assert_eq!(hs[1].name, "B");
        assert_eq!(hs[1].file_descriptor, 3);
        assert!(!hs[1].expand);
        assert_eq!(hs[1].content, "two\n");
    }

    #[test]
    fn heredoc_copy_and_unterminated() {
        let df = p("FROM x\nCOPY <<EOF /dest\nhello\nEOF\n");
        assert_eq!(df.children[1].heredocs[0].content, "hello\n");
        let e = parse("FROM x\nRUN <<EOF\nhello\n").expect_err("unterminated");
        assert_eq!(e, ParseError::UnterminatedHeredoc { line: 2 });
        assert_eq!(e.to_string(), "Dockerfile:2: unterminated heredoc");
    }

    #[test]
    fn heredoc_not_for_json_or_other_instructions() {
        let df = p("FROM x\nRUN [\"cat\", \"<<EOF\"]\nLABEL a=<<EOF\n");
        assert!(df.children[1].heredocs.is_empty());
        assert!(df.children[2].heredocs.is_empty());
    }

    #[test]
    fn onbuild_heredoc() {
        let df = p("FROM x\nONBUILD RUN <<EOF\nhi\nEOF\n");
        assert_eq!(df.children[1].heredocs[0].content, "hi\n");
        assert_eq!(df.children[1].dump(), "onbuild (run \"<<EOF\")");
    }

    #[test]
    fn directives() {
        let df = p("# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM x\n");
        assert_eq!(df.escape_token, '`');
        assert_eq!(df.directives.len(), 3);
        let e = parse("# escape=`\n# escape=\\\nFROM x\n").expect_err("duplicate");
        assert_eq!(e.line(), 2);
        let e = parse("# escape=x\nFROM x\n").expect_err("bad escape");
        assert!(e.to_string().contains("invalid escape token 'x'"));
        // After a non-directive comment, directives are plain comments.
        assert_eq!(p("# hello\n# escape=`\nFROM x\n").escape_token, '\\');
    }

    #[test]
    fn errors_carry_lines() {
        let e = parse("FROM x\n\nENV PATH\n").expect_err("env without value");
        assert_eq!(e.to_string(), "Dockerfile:3: ENV must have two arguments");
        let e = parse("# only\n\n").expect_err("no instructions");
        assert_eq!(e.to_string(), "Dockerfile:2: file with no instructions");
        let e = parse("FROM x\nLABEL a=b c\n").expect_err("missing equals");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2: Syntax error - can't find = in \"c\". Must be of the form: name=value"
        );
    }

    #[test]
    fn unknown_instruction_kept() {
        let df = p("FROM x\nFOO bar\n");
        assert_eq!(df.children[1].dump(), "foo \"\"");
    }

    #[test]
    fn crlf_and_bom() {
        let df = p("\u{feff}FROM x\r\nRUN a \\\r\n  b\r\n");
        assert_eq!(df.dump(), "(from \"x\")\n(run \"a   b\")");
    }
}
