//! A Go `text/template` engine over `serde_json::Value`, for `--format`.
//!
//! It implements the parts docker users rely on: actions with trim markers (`{{-`, `-}}`),
//! comments, field chains (`.State.Status`), variables (`$`, `$x := ...`, `$i, $v := range`),
//! pipelines, parenthesised pipelines, `if`/`else if`/`else`, `range` (with `else`, `break`,
//! `continue`), `with`/`else`, and the functions Go registers (`and or not len index slice
//! print printf println eq ne lt le gt ge urlquery`) plus docker's own (`json join split
//! lower upper title pad truncate`). Output of values follows `fmt`'s `%v`: maps print as
//! `map[k:v]` with sorted keys, lists as `[a b]`, a missing value as `<no value>`.
//!
//! Docker formats table rows with methods that take arguments (`{{.Label "k"}}`); row
//! objects here carry their labels under [`LABELS_KEY`], which `Label` reads and `json`
//! hides. Headers are rendered by executing the same template in "header mode", where the
//! string functions are identities, as docker's `HeaderFunctions` are.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Hidden key of row objects holding the labels map for `.Label "key"`.
pub const LABELS_KEY: &str = "\u{0}labels";

/// Hidden key marking docker formatter rows. Their `json` goes through Go's `MarshalJSON`
/// of the row context, which escapes `<`, `>` and `&` (`"\u003cnone\u003e"`), whereas
/// `json` of plain data does not.
pub const ROW_KEY: &str = "\u{0}row";

/// Parse and execution errors, with the template text position where known.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("template: {0}")]
    Parse(String),
    #[error("template: {0}")]
    Exec(String),
}

type R<T> = Result<T, TemplateError>;

fn perr<T>(m: impl Into<String>) -> R<T> {
    Err(TemplateError::Parse(m.into()))
}
fn eerr<T>(m: impl Into<String>) -> R<T> {
    Err(TemplateError::Exec(m.into()))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(String),
    Num(f64, bool),
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot,
    /// Field chain on dot: `.A.B`.
    Field(Vec<String>),
    /// Variable with an optional field chain: `$x.A`.
    Var(String, Vec<String>),
    Func(String),
    Str(String),
    Num(f64, bool),
    Bool(bool),
    Nil,
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

/// Raw pieces of the source: text and action bodies.
enum Piece {
    Text(String),
    Action(String),
}

fn split_source(src: &str) -> R<Vec<Piece>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(i) = rest.find("{{") {
        let mut text = rest[..i].to_string();
        let after = &rest[i + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_next {
            text = text.trim_start().to_string();
        }
        if trim_left {
            text = text.trim_end().to_string();
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        let body_start = if trim_left { &after[1..] } else { after };
        let end = find_action_end(body_start)?;
        let mut body = &body_start[..end];
        trim_next = false;
        if body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-") {
            trim_next = true;
            body = &body[..body.len() - 1];
        }
        let b = body.trim();
        if !(b.starts_with("/*") && b.ends_with("*/")) {
            out.push(Piece::Action(body.to_string()));
        }
        rest = &body_start[end + 2..];
    }
    let mut text = rest.to_string();
    if trim_next {
        text = text.trim_start().to_string();
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Position of the closing `}}`, skipping over string literals.
fn find_action_end(s: &str) -> R<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Ok(i),
            _ => {}
        }
        i += 1;
    }
    perr("unclosed action")
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(s: &str) -> R<Vec<Tok>> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                // `).Field` chains after a parenthesised pipeline.
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' if cs.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1
            }
            '"' => {
                let mut v = String::new();
                i += 1;
                loop {
                    let Some(&ch) = cs.get(i) else {
                        return perr("unterminated quoted string");
                    };
                    i += 1;
                    match ch {
                        '"' => break,
                        '\\' => {
                            let e = cs.get(i).copied().unwrap_or('\\');
                            i += 1;
                            v.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '0' => '\0',
                                other => other,
                            });
                        }
                        ch => v.push(ch),
                    }
                }
                out.push(Tok::Str(v));
            }
            '`' => {
                let mut v = String::new();
                i += 1;
                while i < cs.len() && cs[i] != '`' {
                    v.push(cs[i]);
                    i += 1;
                }
                if i >= cs.len() {
                    return perr("unterminated raw quoted string");
                }
                i += 1;
                out.push(Tok::Str(v));
            }
            '\'' => {
                let ch = cs.get(i + 1).copied().unwrap_or('\0');
                if cs.get(i + 2) != Some(&'\'') {
                    return perr("malformed character constant");
                }
                i += 3;
                out.push(Tok::Num(ch as u32 as f64, true));
            }
            '.' if !cs.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let mut j = i + 1;
                while j < cs.len() && is_ident_char(cs[j]) {
                    j += 1;
                }
                if j == i + 1 {
                    out.push(Tok::Dot);
                } else {
                    out.push(Tok::Field(cs[i + 1..j].iter().collect()));
                }
                i = j;
            }
            '$' => {
                let mut j = i + 1;
                while j < cs.len() && is_ident_char(cs[j]) {
                    j += 1;
                }
                out.push(Tok::Var(cs[i..j].iter().collect()));
                i = j;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let mut j = i + 1;
                while j < cs.len()
                    && (cs[j].is_ascii_alphanumeric() || cs[j] == '.' || cs[j] == '_')
                {
                    j += 1;
                }
                let t: String = cs[i..j].iter().collect::<String>().replace('_', "");
                let n = if let Some(h) = t.strip_prefix("0x") {
                    i64::from_str_radix(h, 16).ok().map(|v| (v as f64, true))
                } else if let Ok(v) = t.parse::<i64>() {
                    Some((v as f64, true))
                } else {
                    t.parse::<f64>().ok().map(|v| (v, false))
                };
                let Some((v, int)) = n else {
                    return perr(format!("bad number syntax: {t:?}"));
                };
                out.push(Tok::Num(v, int));
                i = j;
            }
            c if is_ident_char(c) => {
                let mut j = i;
                while j < cs.len() && is_ident_char(cs[j]) {
                    j += 1;
                }
                out.push(Tok::Ident(cs[i..j].iter().collect()));
                i = j;
            }
            other => return perr(format!("unexpected {other:?} in command")),
        }
    }
    Ok(out)
}

struct PipeParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl PipeParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn pipe(&mut self, in_paren: bool) -> R<Pipe> {
        let mut decl = Vec::new();
        let mut assign = false;
        // Look ahead for `$x :=` or `$i, $v :=`.
        let save = self.pos;
        let mut vars = Vec::new();
        while let Some(Tok::Var(v)) = self.peek().cloned() {
            self.pos += 1;
            vars.push(v);
            match self.peek() {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::Declare) | Some(Tok::Assign) => break,
                _ => break,
            }
        }
        match self.peek() {
            Some(Tok::Declare) if !vars.is_empty() => {
                self.pos += 1;
                decl = vars;
            }
            Some(Tok::Assign) if !vars.is_empty() => {
                self.pos += 1;
                decl = vars;
                assign = true;
            }
            _ => self.pos = save,
        }
        let mut cmds = Vec::new();
        let mut cur: Vec<Arg> = Vec::new();
        loop {
            match self.peek().cloned() {
                None => break,
                Some(Tok::RParen) if in_paren => break,
                Some(Tok::RParen) => return perr("unexpected right paren"),
                Some(Tok::Pipe) => {
                    self.pos += 1;
                    if cur.is_empty() {
                        return perr("missing command before |");
                    }
                    cmds.push(std::mem::take(&mut cur));
                }
                Some(_) => cur.push(self.operand()?),
            }
        }
        if !cur.is_empty() {
            cmds.push(cur);
        }
        if cmds.is_empty() {
            return perr("missing value for command");
        }
        Ok(Pipe { decl, assign, cmds })
    }

    fn operand(&mut self) -> R<Arg> {
        let t = self.toks[self.pos].clone();
        self.pos += 1;
        let base = match t {
            Tok::Dot => Arg::Dot,
            Tok::Field(f) => {
                let mut chain = vec![f];
                self.chain(&mut chain);
                return Ok(Arg::Field(chain));
            }
            Tok::Var(v) => {
                let mut chain = Vec::new();
                self.chain(&mut chain);
                return Ok(Arg::Var(v, chain));
            }
            Tok::Ident(i) => match i.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => Arg::Func(i),
            },
            Tok::Str(s) => Arg::Str(s),
            Tok::Num(n, i) => Arg::Num(n, i),
            Tok::LParen => {
                let p = self.pipe(true)?;
                if self.peek() != Some(&Tok::RParen) {
                    return perr("unclosed left paren");
                }
                self.pos += 1;
                let mut chain = Vec::new();
                self.chain(&mut chain);
                return Ok(Arg::Sub(Box::new(p), chain));
            }
            other => return perr(format!("unexpected {other:?} in operand")),
        };
        Ok(base)
    }

    fn chain(&mut self, chain: &mut Vec<String>) {
        while let Some(Tok::Field(f)) = self.peek().cloned() {
            self.pos += 1;
            chain.push(f);
        }
    }
}

fn parse_pipe(s: &str) -> R<Pipe> {
    let mut p = PipeParser {
        toks: lex(s)?,
        pos: 0,
    };
    let pipe = p.pipe(false)?;
    if p.pos != p.toks.len() {
        return perr(format!("unexpected tokens in action {s:?}"));
    }
    Ok(pipe)
}

enum Stop {
    End,
    Else(Option<String>),
    Eof,
}

struct Parser {
    pieces: Vec<Piece>,
    pos: usize,
}

impl Parser {
    fn list(&mut self) -> R<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while self.pos < self.pieces.len() {
            let idx = self.pos;
            self.pos += 1;
            match &self.pieces[idx] {
                Piece::Text(t) => nodes.push(Node::Text(t.clone())),
                Piece::Action(a) => {
                    let a = a.trim().to_string();
                    let (kw, rest) = match a.find(|c: char| c.is_whitespace()) {
                        Some(i) => (&a[..i], a[i..].trim()),
                        None => (a.as_str(), ""),
                    };
                    match kw {
                        "end" => return Ok((nodes, Stop::End)),
                        "else" => {
                            let r = (!rest.is_empty()).then(|| rest.to_string());
                            return Ok((nodes, Stop::Else(r)));
                        }
                        "if" | "range" | "with" => {
                            let n = self.control(kw, rest)?;
                            nodes.push(n);
                        }
                        "break" => nodes.push(Node::Break),
                        "continue" => nodes.push(Node::Continue),
                        "define" | "template" | "block" => {
                            return perr(format!("{kw} is not supported"))
                        }
                        _ => nodes.push(Node::Action(parse_pipe(&a)?)),
                    }
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(&mut self, kw: &str, rest: &str) -> R<Node> {
        let pipe = parse_pipe(rest)?;
        let (body, stop) = self.list()?;
        let els = match stop {
            Stop::End => Vec::new(),
            Stop::Eof => return perr(format!("unexpected EOF in {kw}")),
            Stop::Else(None) => {
                let (e, stop2) = self.list()?;
                if !matches!(stop2, Stop::End) {
                    return perr(format!("expected end after else in {kw}"));
                }
                e
            }
            Stop::Else(Some(chain)) => {
                // `else if ...` / `else with ...`: a nested control sharing our `end`.
                let chain = chain.trim();
                let (kw2, rest2) = match chain.find(|c: char| c.is_whitespace()) {
                    Some(i) => (&chain[..i], chain[i..].trim()),
                    None => (chain, ""),
                };
                if kw2 != "if" && kw2 != "with" {
                    return perr(format!("unexpected {chain:?} after else"));
                }
                vec![self.control(kw2, rest2)?]
            }
        };
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }
}

/// Options of one execution.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    /// Header mode: string functions return their first argument unchanged.
    pub header: bool,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    out: String,
    vars: Vec<(String, Value)>,
    opts: ExecOptions,
    root: &'a Value,
}

impl Template {
    /// Parse a template. Errors read like Go's: `template: :LINE: message`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Self::parse_inner(src).map_err(|e| match e {
            TemplateError::Parse(m) => TemplateError::Parse(format!(":1: {m}")),
            other => other,
        })
    }

    fn parse_inner(src: &str) -> Result<Template, TemplateError> {
        let mut p = Parser {
            pieces: split_source(src)?,
            pos: 0,
        };
        let (nodes, stop) = p.list()?;
        match stop {
            Stop::Eof => Ok(Template { nodes }),
            Stop::End => perr("unexpected {{end}}"),
            Stop::Else(_) => perr("unexpected {{else}}"),
        }
    }

    /// Execute on `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        self.execute_with(data, ExecOptions::default())
    }

    /// Execute with options (header mode).
    pub fn execute_with(&self, data: &Value, opts: ExecOptions) -> Result<String, TemplateError> {
        let mut ex = Exec {
            out: String::new(),
            vars: vec![("$".to_string(), data.clone())],
            opts,
            root: data,
        };
        ex.nodes(&self.nodes, data)?;
        Ok(ex.out)
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Go's `%v` of a float64: `strconv`'s shortest `%g`, which switches to `%e` form when the
/// decimal exponent is below -4 or at least 6 (so `1e+06`, the reason docker's raw-inspect
/// fallback prints `5.36870912e+08`). Integer JSON numbers never get here.
pub fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f.is_nan() {
        return "NaN".to_string();
    }
    let exp = f.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').expect("{:e} output has an exponent");
        let e: i32 = e.parse().expect("{:e} exponent is an integer");
        let sign = if e < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", e.abs())
    }
}

/// Go's `%v` formatting of a value.
pub fn print_value(v: &Value) -> String {
    let mut s = String::new();
    write_value(&mut s, v, true);
    s
}

fn write_value(s: &mut String, v: &Value, top: bool) {
    match v {
        Value::Null => s.push_str(if top { "<no value>" } else { "<nil>" }),
        Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(s, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(s, "{u}");
            } else {
                s.push_str(&go_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(t) => s.push_str(t),
        Value::Array(a) => {
            s.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                write_value(s, x, false);
            }
            s.push(']');
        }
        Value::Object(o) => {
            s.push_str("map[");
            let mut keys: Vec<&String> = o.keys().filter(|k| !hidden(k)).collect();
            keys.sort();
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(k);
                s.push(':');
                write_value(s, &o[k.as_str()], false);
            }
            s.push(']');
        }
    }
}

/// `json` as docker's template function: compact, no HTML escaping (except for formatter
/// rows, see [`ROW_KEY`]), hidden keys dropped.
pub fn to_json(v: &Value) -> String {
    let escape = v.get(ROW_KEY).is_some();
    let s = to_json_plain(v);
    if escape {
        s.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    } else {
        s
    }
}

fn hidden(k: &str) -> bool {
    k == LABELS_KEY || k == ROW_KEY
}

fn to_json_plain(v: &Value) -> String {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter(|(k, _)| !hidden(k))
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect::<Map<_, _>>(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&strip(v)).expect("serializing a serde_json::Value cannot fail")
}

fn field(v: &Value, name: &str) -> R<Value> {
    match v {
        Value::Object(o) => Ok(o.get(name).cloned().unwrap_or(Value::Null)),
        Value::Null => Ok(Value::Null),
        other => eerr(format!(
            "can't evaluate field {name} in type {}",
            type_name(other)
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn num(n: f64, int: bool) -> Value {
    if int {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> R<Flow> {
        for n in nodes {
            match self.node(n, dot)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, n: &Node, dot: &Value) -> R<Flow> {
        match n {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p) => {
                let v = self.pipe(p, dot)?;
                if p.decl.is_empty() {
                    let s = print_value(&v);
                    self.out.push_str(&s);
                }
            }
            Node::If(p, body, els) => {
                let mark = self.vars.len();
                let v = self.pipe(p, dot)?;
                let f = if truthy(&v) {
                    self.nodes(body, dot)?
                } else {
                    self.nodes(els, dot)?
                };
                self.vars.truncate(mark);
                return Ok(f);
            }
            Node::With(p, body, els) => {
                let mark = self.vars.len();
                let v = self.pipe(p, dot)?;
                let f = if truthy(&v) {
                    self.nodes(body, &v)?
                } else {
                    self.nodes(els, dot)?
                };
                self.vars.truncate(mark);
                return Ok(f);
            }
            Node::Range(p, body, els) => {
                let mut p2 = p.clone();
                let decl = std::mem::take(&mut p2.decl);
                let v = self.pipe(&p2, dot)?;
                let items: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i), x.clone()))
                        .collect(),
                    Value::Object(o) => {
                        let mut keys: Vec<&String> =
                            o.keys().filter(|k| *k != LABELS_KEY).collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::String(k.clone()), o[k.as_str()].clone()))
                            .collect()
                    }
                    Value::Null => Vec::new(),
                    Value::Number(n) if n.as_i64().is_some() => (0..n.as_i64().unwrap_or(0))
                        .map(|i| (Value::from(i), Value::from(i)))
                        .collect(),
                    other => {
                        return eerr(format!("range can't iterate over {}", print_value(other)))
                    }
                };
                if items.is_empty() {
                    return self.nodes(els, dot);
                }
                for (k, x) in items {
                    let mark = self.vars.len();
                    match decl.len() {
                        0 => {}
                        1 => self.vars.push((decl[0].clone(), x.clone())),
                        _ => {
                            self.vars.push((decl[0].clone(), k));
                            self.vars.push((decl[1].clone(), x.clone()));
                        }
                    }
                    let f = self.nodes(body, &x)?;
                    self.vars.truncate(mark);
                    if let Flow::Break = f {
                        break;
                    }
                }
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn var(&self, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None if name == "$" => Ok(self.root.clone()),
            None => eerr(format!("undefined variable: {name}")),
        }
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> R<Value> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Null);
        if let Some(name) = p.decl.first() {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return eerr(format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> R<Value> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(chain) => chain.iter().try_fold(dot.clone(), |v, f| field(&v, f))?,
            Arg::Var(n, chain) => chain.iter().try_fold(self.var(n)?, |v, f| field(&v, f))?,
            Arg::Func(name) => self.call(name, Vec::new())?,
            Arg::Str(s) => Value::String(s.clone()),
            Arg::Num(n, i) => num(*n, *i),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Null,
            Arg::Sub(p, chain) => {
                let v = self.pipe(p, dot)?;
                chain.iter().try_fold(v, |v, f| field(&v, f))?
            }
        })
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> R<Value> {
        let first = &cmd[0];
        let mut args = Vec::new();
        for a in &cmd[1..] {
            args.push(self.arg(a, dot)?);
        }
        if let Some(p) = piped.clone() {
            args.push(p);
        }
        match first {
            Arg::Func(name) => self.call(name, args),
            Arg::Field(chain) if !args.is_empty() => {
                // A method call with arguments: only docker's `.Label "key"` exists.
                let recv = chain[..chain.len() - 1]
                    .iter()
                    .try_fold(dot.clone(), |v, f| field(&v, f))?;
                let method = &chain[chain.len() - 1];
                if method == "Label" {
                    if self.opts.header {
                        return Ok(Value::String("LABEL".to_string()));
                    }
                    let key = args[0].as_str().unwrap_or_default();
                    let labels = recv.get(LABELS_KEY).cloned().unwrap_or(Value::Null);
                    return Ok(labels
                        .get(key)
                        .cloned()
                        .unwrap_or(Value::String(String::new())));
                }
                eerr(format!("can't give argument to non-function {method}"))
            }
            _ if !args.is_empty() => eerr("can't give argument to non-function"),
            a => self.arg(a, dot),
        }
    }

    fn call(&mut self, name: &str, args: Vec<Value>) -> R<Value> {
        let s0 = || args.first().map(print_value).unwrap_or_default();
        if self.opts.header
            && matches!(
                name,
                "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate" | "pad"
            )
        {
            return Ok(Value::String(s0()));
        }
        let need = |n: usize| -> R<()> {
            if args.len() < n {
                eerr(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                ))
            } else {
                Ok(())
            }
        };
        Ok(match name {
            "json" => {
                need(1)?;
                Value::String(to_json(&args[0]))
            }
            "join" => {
                need(2)?;
                let sep = print_value(&args[1]);
                match &args[0] {
                    Value::Array(a) => {
                        Value::String(a.iter().map(print_value).collect::<Vec<_>>().join(&sep))
                    }
                    other => Value::String(print_value(other)),
                }
            }
            "split" => {
                need(2)?;
                let s = print_value(&args[0]);
                let sep = print_value(&args[1]);
                let parts: Vec<Value> = if sep.is_empty() {
                    s.chars().map(|c| Value::String(c.to_string())).collect()
                } else {
                    s.split(sep.as_str())
                        .map(|p| Value::String(p.to_string()))
                        .collect()
                };
                Value::Array(parts)
            }
            "lower" => Value::String(s0().to_lowercase()),
            "upper" => Value::String(s0().to_uppercase()),
            "title" => {
                let mut out = String::new();
                let mut prev_letter = false;
                for c in s0().chars() {
                    if !prev_letter {
                        out.extend(c.to_uppercase());
                    } else {
                        out.push(c);
                    }
                    prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
                }
                Value::String(out)
            }
            "pad" => {
                need(3)?;
                let b = args[1].as_i64().unwrap_or(0).max(0) as usize;
                let a = args[2].as_i64().unwrap_or(0).max(0) as usize;
                Value::String(format!("{}{}{}", " ".repeat(b), s0(), " ".repeat(a)))
            }
            "truncate" => {
                need(2)?;
                let n = args[1].as_i64().unwrap_or(0).max(0) as usize;
                Value::String(s0().chars().take(n).collect())
            }
            "len" => {
                need(1)?;
                Value::from(match &args[0] {
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.keys().filter(|k| !hidden(k)).count(),
                    Value::String(s) => s.len(),
                    Value::Null => 0,
                    other => return eerr(format!("len of type {}", type_name(other))),
                })
            }
            "index" => {
                need(1)?;
                let mut v = args[0].clone();
                for k in &args[1..] {
                    v = match (&v, k) {
                        (Value::Object(o), k) => {
                            o.get(&print_value(k)).cloned().unwrap_or(Value::Null)
                        }
                        (Value::Array(a), Value::Number(n)) => {
                            let i = n.as_i64().unwrap_or(-1);
                            if i < 0 || i as usize >= a.len() {
                                return eerr(format!("index out of range: {i}"));
                            }
                            a[i as usize].clone()
                        }
                        (Value::Null, _) => Value::Null,
                        (other, _) => {
                            return eerr(format!("can't index item of type {}", type_name(other)))
                        }
                    };
                }
                v
            }
            "slice" => {
                need(1)?;
                let idx: Vec<usize> = args[1..]
                    .iter()
                    .map(|a| a.as_i64().unwrap_or(0).max(0) as usize)
                    .collect();
                match &args[0] {
                    Value::String(s) => {
                        let lo = idx.first().copied().unwrap_or(0).min(s.len());
                        let hi = idx.get(1).copied().unwrap_or(s.len()).min(s.len());
                        if lo > hi || !s.is_char_boundary(lo) || !s.is_char_boundary(hi) {
                            return eerr("slice index out of range");
                        }
                        Value::String(s[lo..hi].to_string())
                    }
                    Value::Array(a) => {
                        let lo = idx.first().copied().unwrap_or(0).min(a.len());
                        let hi = idx.get(1).copied().unwrap_or(a.len()).min(a.len());
                        if lo > hi {
                            return eerr("slice index out of range");
                        }
                        Value::Array(a[lo..hi].to_vec())
                    }
                    other => return eerr(format!("can't slice item of type {}", type_name(other))),
                }
            }
            "print" => Value::String(go_sprint(&args)),
            "println" => {
                Value::String(args.iter().map(print_value).collect::<Vec<_>>().join(" ") + "\n")
            }
            "printf" => {
                need(1)?;
                let f = print_value(&args[0]);
                Value::String(sprintf(&f, &args[1..]))
            }
            "not" => {
                need(1)?;
                Value::Bool(!truthy(&args[0]))
            }
            "and" => {
                need(1)?;
                args.iter()
                    .find(|a| !truthy(a))
                    .cloned()
                    .unwrap_or_else(|| args[args.len() - 1].clone())
            }
            "or" => {
                need(1)?;
                args.iter()
                    .find(|a| truthy(a))
                    .cloned()
                    .unwrap_or_else(|| args[args.len() - 1].clone())
            }
            "eq" => {
                need(2)?;
                Value::Bool(args[1..].iter().any(|b| values_eq(&args[0], b)))
            }
            "ne" => {
                need(2)?;
                Value::Bool(!values_eq(&args[0], &args[1]))
            }
            "lt" | "le" | "gt" | "ge" => {
                need(2)?;
                let ord = compare(&args[0], &args[1]).ok_or_else(|| {
                    TemplateError::Exec(format!("incompatible types for comparison in {name}"))
                })?;
                use std::cmp::Ordering::*;
                Value::Bool(match name {
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                })
            }
            "urlquery" => Value::String(
                go_sprint(&args)
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                            (b as char).to_string()
                        } else if b == b' ' {
                            "+".to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect(),
            ),
            _ => return eerr(format!("function {name:?} not defined")),
        })
    }
}

fn values_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            s.push(' ');
        }
        s.push_str(&print_value(a));
    }
    s
}

/// A `fmt.Sprintf` subset: flags `-`, `0`, `+`, width, precision; verbs v s d q f x X t %.
pub fn sprintf(f: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let cs: Vec<char> = f.chars().collect();
    let mut i = 0;
    let mut ai = 0;
    while i < cs.len() {
        if cs[i] != '%' {
            out.push(cs[i]);
            i += 1;
            continue;
        }
        i += 1;
        let (mut left, mut zero, mut plus) = (false, false, false);
        while i < cs.len() && matches!(cs[i], '-' | '0' | '+' | ' ' | '#') {
            match cs[i] {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                _ => {}
            }
            i += 1;
        }
        let mut width = None;
        while i < cs.len() && cs[i].is_ascii_digit() {
            width = Some(width.unwrap_or(0) * 10 + cs[i].to_digit(10).unwrap_or(0) as usize);
            i += 1;
        }
        let mut prec = None;
        if i < cs.len() && cs[i] == '.' {
            i += 1;
            let mut p = 0;
            while i < cs.len() && cs[i].is_ascii_digit() {
                p = p * 10 + cs[i].to_digit(10).unwrap_or(0) as usize;
                i += 1;
            }
            prec = Some(p);
        }
        let Some(&verb) = cs.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.get(ai) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        ai += 1;
        let mut s = match verb {
            'd' => match a.as_f64() {
                Some(n) => {
                    let n = n as i64;
                    if plus && n >= 0 {
                        format!("+{n}")
                    } else {
                        n.to_string()
                    }
                }
                None => format!("%!d({})", print_value(a)),
            },
            'f' | 'F' => match a.as_f64() {
                Some(n) => format!("{:.*}", prec.unwrap_or(6), n),
                None => format!("%!f({})", print_value(a)),
            },
            'x' | 'X' => {
                let s = match a {
                    Value::Number(n) => format!("{:x}", n.as_i64().unwrap_or(0)),
                    other => print_value(other)
                        .bytes()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                };
                if verb == 'X' {
                    s.to_uppercase()
                } else {
                    s
                }
            }
            'q' => {
                serde_json::to_string(&print_value(a)).expect("string serialization cannot fail")
            }
            't' => print_value(a),
            _ => {
                let s = print_value(a);
                match prec {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
        };
        if let Some(w) = width {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if left {
                    s.push_str(&" ".repeat(pad));
                } else if zero && matches!(verb, 'd' | 'f') {
                    let neg = s.starts_with('-');
                    let digits = s.trim_start_matches('-').to_string();
                    s = format!(
                        "{}{}{}",
                        if neg { "-" } else { "" },
                        "0".repeat(pad),
                        digits
                    );
                } else {
                    s = format!("{}{s}", " ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[ai..]
            .iter()
            .map(|a| format!("{}={}", type_name(a), print_value(a)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

/// Cache of parsed templates is not needed: a CLI run parses one template once.
pub fn render(src: &str, data: &Value) -> Result<String, TemplateError> {
    Template::parse(src)?.execute(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        render(t, v).expect("template renders")
    }

    #[test]
    fn fields_and_text() {
        let v = json!({"State": {"Status": "running", "Pid": 42}, "Name": "/web"});
        assert_eq!(r("{{.State.Status}}", &v), "running");
        assert_eq!(
            r("pid={{.State.Pid}} name={{.Name}}", &v),
            "pid=42 name=/web"
        );
        assert_eq!(r("{{.Missing}}", &v), "<no value>");
        assert_eq!(r("{{.State.Missing}}", &v), "<no value>");
    }

    #[test]
    fn index_json_len() {
        let v = json!({"Config": {"Labels": {"a.b": "c", "x": "y"}, "Env": ["A=1", "B=2"]}});
        assert_eq!(r(r#"{{index .Config.Labels "a.b"}}"#, &v), "c");
        assert_eq!(r("{{json .Config.Labels}}", &v), r#"{"a.b":"c","x":"y"}"#);
        assert_eq!(r("{{len .Config.Env}}", &v), "2");
        assert_eq!(r("{{index .Config.Env 1}}", &v), "B=2");
        assert_eq!(r("{{.Config.Env}}", &v), "[A=1 B=2]");
        assert_eq!(r("{{.Config.Labels}}", &v), "map[a.b:c x:y]");
        assert_eq!(r(r#"{{json "a<b"}}"#, &v), r#""a<b""#);
    }

    #[test]
    fn range_if_with_else() {
        let v = json!({"L": ["a", "b", "c"], "E": [], "M": {"k2": 2, "k1": 1}, "T": true});
        assert_eq!(r("{{range .L}}[{{.}}]{{end}}", &v), "[a][b][c]");
        assert_eq!(
            r("{{range $i, $e := .L}}{{$i}}={{$e}} {{end}}", &v),
            "0=a 1=b 2=c "
        );
        assert_eq!(r("{{range .E}}x{{else}}empty{{end}}", &v), "empty");
        assert_eq!(
            r("{{range $k, $v := .M}}{{$k}}:{{$v}};{{end}}", &v),
            "k1:1;k2:2;"
        );
        assert_eq!(r("{{if .T}}yes{{else}}no{{end}}", &v), "yes");
        assert_eq!(
            r("{{if .E}}yes{{else if .T}}elif{{else}}no{{end}}", &v),
            "elif"
        );
        assert_eq!(r("{{with .M}}{{.k1}}{{end}}", &v), "1");
        assert_eq!(r("{{with .Nope}}x{{else}}none{{end}}", &v), "none");
        assert_eq!(
            r(
                "{{range .L}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}",
                &v
            ),
            "a"
        );
        assert_eq!(
            r(
                "{{range .L}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}",
                &v
            ),
            "ac"
        );
    }

    #[test]
    fn trim_markers_and_comments() {
        let v = json!({"A": "x"});
        assert_eq!(r("a  {{- .A -}}  b", &v), "axb");
        assert_eq!(r("a {{/* hi */}}b", &v), "a b");
        assert_eq!(r("{{- /* c */ -}}\n  z", &v), "z");
        assert_eq!(r("1 {{.A}} 2", &v), "1 x 2");
    }

    #[test]
    fn pipelines_and_functions() {
        let v = json!({"S": "Hello World", "N": "a,b,c", "I": 3});
        assert_eq!(r("{{.S | lower}}", &v), "hello world");
        assert_eq!(r("{{upper .S}}", &v), "HELLO WORLD");
        assert_eq!(r("{{split .N \",\" | len | printf \"%d!\"}}", &v), "3!");
        assert_eq!(r("{{join (split .N \",\") \"+\"}}", &v), "a+b+c");
        assert_eq!(r("{{title \"foo bar\"}}", &v), "Foo Bar");
        assert_eq!(
            r("{{printf \"%-5s|%3d|%q\" \"ab\" .I \"z\"}}", &v),
            "ab   |  3|\"z\""
        );
        assert_eq!(r("{{pad .I 1 2}}", &v), " 3  ");
        assert_eq!(r("{{truncate .S 5}}", &v), "Hello");
        assert_eq!(r("{{println .S}}", &v), "Hello World\n");
        assert_eq!(r("{{slice .S 0 5}}", &v), "Hello");
        assert_eq!(r("{{if and .S (gt .I 2)}}ok{{end}}", &v), "ok");
        assert_eq!(
            r("{{if or (lt .I 1) (not .S)}}bad{{else}}fine{{end}}", &v),
            "fine"
        );
        assert_eq!(r("{{$x := .I}}{{$x}}{{$x = 5}}{{$x}}", &v), "35");
        assert_eq!(r("{{(index (split .N \",\") 1)}}", &v), "b");
        assert_eq!(r("{{eq .I 1 2 3}}", &v), "true");
        assert_eq!(r("{{ne .S \"x\"}}", &v), "true");
    }

    #[test]
    fn dollar_is_root_inside_range() {
        let v = json!({"Name": "n", "L": [1, 2]});
        assert_eq!(r("{{range .L}}{{$.Name}}{{.}}{{end}}", &v), "n1n2");
    }

    #[test]
    fn label_method_and_header_mode() {
        let mut row = serde_json::Map::new();
        row.insert("ID".into(), json!("abc"));
        row.insert(LABELS_KEY.into(), json!({"com.x": "1"}));
        let v = Value::Object(row);
        assert_eq!(r("{{.Label \"com.x\"}}|{{.Label \"nope\"}}", &v), "1|");
        assert_eq!(r("{{json .}}", &v), r#"{"ID":"abc"}"#);
        let t = Template::parse("{{.ID | lower}}\t{{json .ID}}").expect("parses");
        let h = t
            .execute_with(&json!({"ID": "CONTAINER ID"}), ExecOptions { header: true })
            .expect("executes");
        assert_eq!(h, "CONTAINER ID\tCONTAINER ID");
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{.A").is_err());
        assert!(Template::parse("{{if .A}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(render("{{nofunc .A}}", &json!({})).is_err());
        assert!(render("{{.A.B}}", &json!({"A": "s"})).is_err());
    }

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(536870912.5), "5.368709125e+08");
        assert_eq!(go_float(123456.5), "123456.5");
        assert_eq!(print_value(&json!(536870912)), "536870912");
        assert_eq!(print_value(&json!(0.25)), "0.25");
    }
}
