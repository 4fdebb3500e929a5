//! BuildKit's word processing: quote removal, escapes and `$VAR` expansion.
//!
//! This is the lexer BuildKit calls `shell.Lex`. It is not a shell: it knows single and double
//! quotes, the escape token (`\` or `` ` ``, chosen by the `# escape=` directive), `$NAME`,
//! `${NAME}` and these modifiers:
//!
//! | form | meaning |
//! |---|---|
//! | `${V:-w}` / `${V-w}` | `w` if `V` is unset or empty / unset |
//! | `${V:+w}` / `${V+w}` | `w` if `V` is set and non-empty / set, else empty |
//! | `${V:?m}` / `${V?m}` | error `V: m` if `V` is unset or empty / unset |
//! | `${V%p}` `${V%%p}` | remove the shortest / longest suffix matching glob `p` |
//! | `${V#p}` `${V##p}` | remove the shortest / longest prefix matching glob `p` |
//! | `${V/p/r}` `${V//p/r}` | replace the first / every match of glob `p` by `r` |
//!
//! Like BuildKit, `${#V}` (string length) is *not* supported: `#` directly after `${` names the
//! special parameter `$#`, so `${#V}` is an "unsupported modifier" error. Positional (`$1`,
//! `$001`) and special parameters (`$@ $* $# $? $- $$ $! $0`) are parsed as names and are never
//! set.
//!
//! [`Lex::process_word`] returns the processed text as one string (spaces kept);
//! [`Lex::process_words`] splits it into words, where whitespace that came from a variable's
//! value splits words but whitespace inside quotes does not.
//!
//! One deliberate difference from BuildKit: BuildKit shares one word buffer between nested
//! `${V:-...}` scans, so `ProcessWords("a${X:-b}")` loses the `a`. Each scan level here has its
//! own buffer; no test in BuildKit's corpus depends on the loss.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where variable values come from.
pub trait Env {
    /// The value of `key`, or `None` when it is unset (distinct from set to "").
    fn get(&self, key: &str) -> Option<&str>;
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

/// An ordered list of `(key, value)`; the last definition of a key wins, as in an image config's
/// `Env` list after `ENV` instructions.
impl Env for [(String, String)] {
    fn get(&self, key: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, key: &str) -> Option<&str> {
        Env::get(self.as_slice(), key)
    }
}

/// An environment with nothing set.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn get(&self, _key: &str) -> Option<&str> {
        None
    }
}

/// Why a word could not be processed. Messages follow BuildKit's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("failed to process {}: unexpected end of statement while looking for matching single-quote", crate::goquote::quote(.word))]
    UnterminatedSingleQuote { word: String },
    #[error("failed to process {}: unexpected end of statement while looking for matching double-quote", crate::goquote::quote(.word))]
    UnterminatedDoubleQuote { word: String },
    #[error("failed to process {}: unexpected end of statement while looking for matching {stop}", crate::goquote::quote(.word))]
    UnexpectedEnd { word: String, stop: char },
    #[error("failed to process {}: syntax error: missing '}}'", crate::goquote::quote(.word))]
    MissingBrace { word: String },
    #[error("failed to process {}: syntax error: missing '/' in ${{}}", crate::goquote::quote(.word))]
    MissingSlash { word: String },
    #[error("failed to process {}: syntax error: bad substitution", crate::goquote::quote(.word))]
    BadSubstitution { word: String },
    #[error("failed to process {}: unsupported modifier ({modifier}) in substitution", crate::goquote::quote(.word))]
    UnsupportedModifier { word: String, modifier: String },
    #[error("failed to process {}: {name}: {message}", crate::goquote::quote(.word))]
    Required {
        word: String,
        name: String,
        message: String,
    },
    #[error("failed to process {}: invalid pattern ({pattern}) in substitution: {reason}", crate::goquote::quote(.word))]
    InvalidPattern {
        word: String,
        pattern: String,
        reason: String,
    },
}

/// The result of [`Lex::process_word_with_matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessResult {
    /// The processed word with whitespace kept (ProcessWord).
    pub result: String,
    /// The processed word split into words (ProcessWords).
    pub words: Vec<String>,
    /// Variables that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Variables that were referenced and unset.
    pub unmatched: BTreeSet<String>,
}

/// The word processor. The flags mirror BuildKit's `Lex` fields; the defaults are what
/// instruction expansion uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lex {
    escape: char,
    /// Keep quote characters in the output (they still group words).
    pub raw_quotes: bool,
    /// Keep escape tokens in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written instead of expanding them to "".
    pub skip_unset_env: bool,
}

/// Error kinds inside one scan, before the whole word is attached.
enum Fail {
    Single,
    Double,
    End(char),
    Brace,
    Slash,
    Bad,
    Modifier(String),
    Required(String, String),
    Pattern(String, String),
}

impl Lex {
    /// A processor using `escape` (`\` or `` ` ``) as the escape token.
    pub fn new(escape: char) -> Self {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// The escape token.
    pub fn escape_token(&self) -> char {
        self.escape
    }

    /// BuildKit's `ProcessWord`: expand and unquote, keeping whitespace.
    pub fn process_word(
        &self,
        word: &str,
        env: &(impl Env + ?Sized),
    ) -> Result<String, ShellError> {
        Ok(self.process_word_with_matches(word, env)?.result)
    }

    /// BuildKit's `ProcessWords`: expand, unquote and split into words.
    pub fn process_words(
        &self,
        word: &str,
        env: &(impl Env + ?Sized),
    ) -> Result<Vec<String>, ShellError> {
        Ok(self.process_word_with_matches(word, env)?.words)
    }

    /// Processes `word` and reports which variables it referenced.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &(impl Env + ?Sized),
    ) -> Result<ProcessResult, ShellError> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env: &|k: &str| env.get(k).map(str::to_owned),
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let raw = sw.raw_escapes;
        match sw.process_stop_on(None, raw) {
            Ok((result, words)) => Ok(ProcessResult {
                result,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(f) => Err(attach(word, f)),
        }
    }
}

fn attach(word: &str, f: Fail) -> ShellError {
    let word = word.to_owned();
    match f {
        Fail::Single => ShellError::UnterminatedSingleQuote { word },
        Fail::Double => ShellError::UnterminatedDoubleQuote { word },
        Fail::End(stop) => ShellError::UnexpectedEnd { word, stop },
        Fail::Brace => ShellError::MissingBrace { word },
        Fail::Slash => ShellError::MissingSlash { word },
        Fail::Bad => ShellError::BadSubstitution { word },
        Fail::Modifier(modifier) => ShellError::UnsupportedModifier { word, modifier },
        Fail::Required(name, message) => ShellError::Required {
            word,
            name,
            message,
        },
        Fail::Pattern(pattern, reason) => ShellError::InvalidPattern {
            word,
            pattern,
            reason,
        },
    }
}

type Getter<'a> = &'a dyn Fn(&str) -> Option<String>;

struct ShellWord<'a> {
    lex: Lex,
    chars: Vec<char>,
    pos: usize,
    env: Getter<'a>,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Word splitting state (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() && self.in_word {
            if !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else if !c.is_whitespace() {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match (self.env)(name) {
            Some(v) => {
                self.matched.insert(name.to_owned());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }

    /// Scans until `stop` (consumed) or the end of input; `raw_escapes` applies for the
    /// duration of this scan only, as in BuildKit.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), Fail> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.scan(stop);
        self.raw_escapes = saved;
        r
    }

    fn scan(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), Fail> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if !self.lex.skip_process_quotes => Some(self.process_single_quote()?),
                '"' if !self.lex.skip_process_quotes => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            let mut ch = self.next().expect("peeked a character");
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                // The escape token escapes the next character; at the end it is dropped.
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(Fail::End(stop));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, Fail> {
        let mut result = String::new();
        let open = self.next().expect("caller peeked the quote");
        if self.lex.raw_quotes {
            result.push(open);
        }
        loop {
            match self.next() {
                None => return Err(Fail::Single),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, Fail> {
        let mut result = String::new();
        let open = self.next().expect("caller peeked the quote");
        if self.lex.raw_quotes {
            result.push(open);
        }
        loop {
            match self.peek() {
                None => return Err(Fail::Double),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().expect("peeked a character");
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // A trailing escape is ignored; the loop then reports the
                            // missing closing quote.
                            None => continue,
                            // Only these can be escaped inside double quotes; any other
                            // escape token stays literal.
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = self.next().expect("peeked a character");
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek() {
                    if !d.is_numeric() {
                        break;
                    }
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !ch.is_numeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, Fail> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(Fail::Brace),
            Some('{' | '}' | ':') => return Err(Fail::Bad),
            _ => {}
        }
        let name = self.process_name();
        let first = self.next();
        let mut chs: String = first.map(String::from).unwrap_or_else(|| "\u{fffd}".into());
        match first {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut ch = first;
                let null_is_unset = ch == Some(':');
                if null_is_unset {
                    ch = self.next();
                    chs.push(ch.unwrap_or('\u{fffd}'));
                }
                let raw = matches!(ch, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(Fail::Modifier(chs));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(Fail::Brace);
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let empty = value.as_deref().is_none_or(str::is_empty);
                match ch {
                    Some('-') => Ok(if value.is_none() || (null_is_unset && empty) {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if value.is_none() || (null_is_unset && empty) {
                        String::new()
                    } else {
                        word
                    }),
                    Some('?') => match value {
                        None => Err(Fail::Required(
                            name,
                            if word.is_empty() {
                                "is not allowed to be unset".into()
                            } else {
                                word
                            },
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(Fail::Required(
                            name,
                            if word.is_empty() {
                                "is not allowed to be empty".into()
                            } else {
                                word
                            },
                        )),
                        Some(v) => Ok(v),
                    },
                    Some(c @ ('%' | '#')) => {
                        let (greedy, pattern) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest.to_owned()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        if c == '%' {
                            trim_suffix(&pattern, &value, greedy)
                        } else {
                            trim_prefix(&pattern, &value, greedy)
                        }
                    }
                    _ => Err(Fail::Modifier(chs)),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(Fail::Slash);
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(Fail::Brace);
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                let Some(value) = value else {
                    if self.lex.skip_unset_env {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return replace(&pattern, "", &replacement, replace_all);
                };
                replace(&pattern, &value, &replacement, replace_all)
            }
            _ => Err(Fail::Modifier(chs)),
        }
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.next();
        // A heredoc may have whitespace between `<<` and its word; keep it with the `<<`.
        let mut result = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            result.push(c);
            self.next();
        }
        result
    }
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Converts a shell glob (`*`, `?`, `\` escapes; no bracket expressions, like BuildKit) to a
/// regular expression. `*` is greedy or lazy; the regex crate's leftmost-first semantics match
/// Go's regexp package, so the chosen match is the one BuildKit chooses.
fn shell_pattern_to_regex(
    pattern: &str,
    greedy: bool,
    anchored: bool,
) -> Result<regex::Regex, Fail> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let tok = chars[i];
        i += 1;
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                // `\}` and `\/` only protect the character from ending the `${}`; the
                // backslash is not part of the pattern.
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                let next = chars.get(i).copied();
                i += 1;
                match next {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    other => {
                        let shown = other
                            .map(String::from)
                            .unwrap_or_else(|| "%!c(int=-1)".into());
                        return Err(Fail::Pattern(
                            pattern.to_owned(),
                            format!("invalid escape '\\{shown}'"),
                        ));
                    }
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(tok);
            }
            c => out.push(c),
        }
    }
    regex::Regex::new(&out).map_err(|e| Fail::Pattern(pattern.to_owned(), e.to_string()))
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, Fail> {
    let re = shell_pattern_to_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_owned(),
        None => value.to_owned(),
    })
}

/// Reverses a pattern without reversing its escapes (`a\*c` becomes `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let tok = p[i];
        let out_idx = last - i;
        if tok == '\\' && i != last {
            out[out_idx - 1] = tok;
            out[out_idx] = p[i + 1];
            i += 2;
        } else {
            out[out_idx] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Regular expressions find leftmost matches only, so the shortest or longest *suffix* is
/// found as a prefix of the reversed value with the reversed pattern.
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, Fail> {
    let rev: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &rev, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

fn replace(pattern: &str, value: &str, replacement: &str, all: bool) -> Result<String, Fail> {
    let re = shell_pattern_to_regex(pattern, true, false)?;
    if all {
        return Ok(re.replace_all(value, replacement).into_owned());
    }
    Ok(match re.find(value) {
        Some(m) => format!(
            "{}{}{}",
            &value[..m.start()],
            replacement,
            &value[m.end()..]
        ),
        None => value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("PWD".into(), "/home".into()),
            ("FILE".into(), "archive.tar.gz".into()),
            ("EMPTY".into(), String::new()),
        ]
    }

    fn word(s: &str) -> Result<String, ShellError> {
        Lex::new('\\').process_word(s, &env())
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(word("${X:-a}").expect("expands"), "a");
        assert_eq!(word("${EMPTY-a}").expect("expands"), "");
        assert_eq!(word("${EMPTY:-a}").expect("expands"), "a");
        assert_eq!(word("${EMPTY+a}").expect("expands"), "a");
        assert_eq!(word("${EMPTY:+a}").expect("expands"), "");
    }

    #[test]
    fn required_messages() {
        let e = word("${X:?custom}").expect_err("unset is an error");
        assert_eq!(
            e.to_string(),
            "failed to process \"${X:?custom}\": X: custom"
        );
        let e = word("${EMPTY:?}").expect_err("empty is an error");
        assert_eq!(
            e.to_string(),
            "failed to process \"${EMPTY:?}\": EMPTY: is not allowed to be empty"
        );
    }

    #[test]
    fn prefix_and_suffix_removal() {
        assert_eq!(word("${FILE%.*}").expect("expands"), "archive.tar");
        assert_eq!(word("${FILE%%.*}").expect("expands"), "archive");
        assert_eq!(word("${FILE#*.}").expect("expands"), "tar.gz");
        assert_eq!(word("${FILE##*.}").expect("expands"), "gz");
        assert_eq!(word("${FILE#nomatch}").expect("expands"), "archive.tar.gz");
        assert!(word("${FILE:#x}").is_err());
    }

    #[test]
    fn replacement() {
        assert_eq!(word("${FILE/a/A}").expect("expands"), "Archive.tar.gz");
        assert_eq!(word("${FILE//a/A}").expect("expands"), "Archive.tAr.gz");
        assert_eq!(word("${FILE/.*/}").expect("expands"), "archive");
        assert_eq!(word("${PWD/\\/h/x}").expect("expands"), "xome");
        assert!(matches!(
            word("${FILE/a"),
            Err(ShellError::MissingSlash { .. })
        ));
    }

    #[test]
    fn length_form_is_rejected_like_buildkit() {
        assert!(matches!(
            word("${#PWD}"),
            Err(ShellError::UnsupportedModifier { .. })
        ));
    }

    #[test]
    fn backtick_escape_token() {
        let lex = Lex::new('`');
        assert_eq!(
            lex.process_word("a`$PWD", &env()).expect("expands"),
            "a$PWD"
        );
        assert_eq!(lex.process_word("a\\b", &env()).expect("expands"), "a\\b");
    }

    #[test]
    fn skip_unset_env_keeps_references() {
        let mut lex = Lex::new('\\');
        lex.skip_unset_env = true;
        assert_eq!(
            lex.process_word("$X ${Y} ${Z:-d} $PWD", &env())
                .expect("expands"),
            "$X ${Y} ${Z:-d} /home"
        );
    }

    #[test]
    fn matches_are_reported() {
        let r = Lex::new('\\')
            .process_word_with_matches("$PWD $NOPE", &env())
            .expect("expands");
        assert!(r.matched.contains("PWD"));
        assert!(r.unmatched.contains("NOPE"));
    }

    #[test]
    fn nested_default_keeps_preceding_text_in_words() {
        let w = Lex::new('\\')
            .process_words("a${X:-b} c", &env())
            .expect("expands");
        assert_eq!(w, vec!["ab".to_string(), "c".to_string()]);
    }
}
