//! The subset of Go's `html/template` that mail templates use, so operators' existing
//! GoTrue templates render unchanged (HOOKS_AND_MAIL.md 2.6).
//!
//! Supported: text; actions `{{ pipeline }}` with trim markers `{{-`/`-}}` and comments
//! `{{/* */}}`; `.`, field chains (`.Data.full_name`), `$` and `$.Field`; string, raw-string,
//! number, `true`/`false`/`nil` literals; parenthesised pipelines and `|`; the control
//! structures `if`/`else if`/`else`, `with`/`else`, `range`/`else` and `end`; the built-in
//! functions `and or not eq ne lt le gt ge len index print printf println html urlquery`.
//! Values print as Go's `fmt` prints the JSON-decoded data (numbers as float64, missing
//! keys and `null` as nothing) and are escaped for their HTML context by
//! [`super::escape`], as `html/template` does. Anything else (variables, `define`,
//! `template`, `block`, other functions) is a parse error, which makes the send fail, as a
//! broken template does upstream.
//!
//! `gtmpl` was considered and not used: it implements `text/template` only (no contextual
//! escaping) and has not been released since 2021.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::escape::HtmlContext;

/// A template could not be parsed or executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The source is not a template this renderer understands.
    #[error("template: line {line}: {msg}")]
    Parse {
        /// 1-based line of the offending action.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// Executing the template failed.
    #[error("template: executing line {line}: {msg}")]
    Exec {
        /// 1-based line of the offending action.
        line: usize,
        /// What failed.
        msg: String,
    },
}

/// A parsed template, ready to execute any number of times.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If { branches: Vec<(Pipeline, Vec<Node>)>, otherwise: Vec<Node> },
    With { pipe: Pipeline, body: Vec<Node>, otherwise: Vec<Node> },
    Range { pipe: Pipeline, body: Vec<Node>, otherwise: Vec<Node> },
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    line: usize,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.` followed by zero or more fields.
    Dot(Vec<String>),
    /// `$` followed by zero or more fields.
    Root(Vec<String>),
    Lit(Value),
    Func(Func),
    Sub(Pipeline, Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    And,
    Or,
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Len,
    Index,
    Print,
    Printf,
    Println,
    Html,
    UrlQuery,
}

impl Func {
    fn lookup(name: &str) -> Option<Self> {
        Some(match name {
            "and" => Self::And,
            "or" => Self::Or,
            "not" => Self::Not,
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "lt" => Self::Lt,
            "le" => Self::Le,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "len" => Self::Len,
            "index" => Self::Index,
            "print" => Self::Print,
            "printf" => Self::Printf,
            "println" => Self::Println,
            "html" => Self::Html,
            "urlquery" => Self::UrlQuery,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Lexing: split the source into text and action token lists.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot(Vec<String>),
    Root(Vec<String>),
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    /// `)` immediately followed by `.Field` chains is folded into this.
    RParenFields(Vec<String>),
    Pipe,
}

enum Item {
    Text(String),
    Action { line: usize, toks: Vec<Tok> },
}

const GO_SPACE: &[char] = &[' ', '\t', '\r', '\n'];

fn perr<T>(line: usize, msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError::Parse { line, msg: msg.into() })
}

fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let (text, after) = match rest.find("{{") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        let mut text = text.to_owned();
        if trim_next {
            text = text.trim_start_matches(GO_SPACE).to_owned();
        }
        line += rest[..rest.len() - after.map_or(0, |a| a.len() + 2)].matches('\n').count();
        let Some(mut inner) = after else {
            items.push(Item::Text(text));
            break;
        };
        if inner.starts_with('-') && inner[1..].starts_with(GO_SPACE) {
            text = text.trim_end_matches(GO_SPACE).to_owned();
            inner = inner[1..].trim_start_matches(GO_SPACE);
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        let action_line = line;
        let (toks, consumed, right_trim) = lex_action(inner, action_line)?;
        line += inner[..consumed].matches('\n').count();
        trim_next = right_trim;
        if let Some(toks) = toks {
            items.push(Item::Action { line: action_line, toks });
        }
        rest = &inner[consumed..];
    }
    Ok(items)
}

/// Lexes one action body; returns its tokens (`None` for a comment), the bytes consumed
/// including the closing delimiter, and whether it ended with a right trim marker.
fn lex_action(s: &str, line: usize) -> Result<(Option<Vec<Tok>>, usize, bool), TemplateError> {
    let close = |i: usize| -> Option<(usize, bool)> {
        let r = &s[i..];
        if r.starts_with("}}") {
            return Some((i + 2, false));
        }
        let t = r.trim_start_matches(GO_SPACE);
        if t.len() < r.len() && t.starts_with("-}}") {
            return Some((i + (r.len() - t.len()) + 3, true));
        }
        None
    };
    let trimmed = s.trim_start_matches(GO_SPACE);
    if trimmed.starts_with("/*") {
        let start = s.len() - trimmed.len();
        let Some(end) = s[start..].find("*/") else {
            return perr(line, "unclosed comment");
        };
        let after = start + end + 2;
        return match close(after) {
            Some((n, trim)) => Ok((None, n, trim)),
            None => perr(line, "comment ends before closing delimiter"),
        };
    }
    let mut toks = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        if let Some((n, trim)) = close(i) {
            return Ok((Some(toks), n, trim));
        }
        let Some(&b) = bytes.get(i) else {
            return perr(line, "unclosed action");
        };
        let c = b as char;
        match c {
            ' ' | '\t' | '\r' | '\n' => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                i += 1;
                let (fields, n) = lex_fields(&s[i..]);
                i += n;
                toks.push(if fields.is_empty() { Tok::RParen } else { Tok::RParenFields(fields) });
            }
            '.' => {
                let (fields, n) = lex_fields(&s[i..]);
                if n == 0 {
                    // A lone dot.
                    toks.push(Tok::Dot(Vec::new()));
                    i += 1;
                } else {
                    toks.push(Tok::Dot(fields));
                    i += n;
                }
            }
            '$' => {
                i += 1;
                let name_len = s[i..].find(|ch: char| !(ch.is_alphanumeric() || ch == '_')).unwrap_or(s.len() - i);
                if name_len > 0 {
                    return perr(line, "template variables are not supported");
                }
                let (fields, n) = lex_fields(&s[i..]);
                i += n;
                toks.push(Tok::Root(fields));
            }
            '"' => {
                let (v, n) = lex_quoted(&s[i..], line)?;
                toks.push(Tok::Str(v));
                i += n;
            }
            '`' => {
                let Some(end) = s[i + 1..].find('`') else {
                    return perr(line, "unterminated raw quoted string");
                };
                toks.push(Tok::Str(s[i + 1..i + 1 + end].to_owned()));
                i += end + 2;
            }
            ':' | '=' => return perr(line, "template variables are not supported"),
            '\'' => return perr(line, "character constants are not supported"),
            c if c.is_ascii_digit() || ((c == '-' || c == '+') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                let end =
                    s[i + 1..].find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '_')).map_or(s.len(), |e| e + i + 1);
                let lit = s[i..end].replace('_', "");
                let n = lit.parse::<f64>().map_err(|_| TemplateError::Parse { line, msg: format!("bad number syntax: {lit:?}") })?;
                toks.push(Tok::Num(n));
                i = end;
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = s[i..].find(|ch: char| !(ch.is_alphanumeric() || ch == '_')).map_or(s.len(), |e| e + i);
                toks.push(Tok::Ident(s[i..end].to_owned()));
                i = end;
            }
            other => {
                // Multi-byte characters land here too; report the whole character.
                let ch = s[i..].chars().next().unwrap_or(other);
                return perr(line, format!("unexpected {ch:?} in action"));
            }
        }
    }
}

/// `.A.B` field chains at the start of `s`: the names and the bytes consumed.
fn lex_fields(s: &str) -> (Vec<String>, usize) {
    let mut fields = Vec::new();
    let mut i = 0;
    while s[i..].starts_with('.') {
        let name_len = s[i + 1..].find(|ch: char| !(ch.is_alphanumeric() || ch == '_')).unwrap_or(s.len() - i - 1);
        if name_len == 0 {
            break;
        }
        fields.push(s[i + 1..i + 1 + name_len].to_owned());
        i += 1 + name_len;
    }
    (fields, i)
}

/// A Go interpreted string literal at the start of `s` (which begins with `"`).
fn lex_quoted(s: &str, line: usize) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\n' => break,
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                Some(e) => return perr(line, format!("unsupported escape \\{e} in string")),
                None => break,
            },
            c => out.push(c),
        }
    }
    perr(line, "unterminated quoted string")
}

// ---------------------------------------------------------------------------------------
// Parsing.

enum Block {
    If { branches: Vec<(Pipeline, Vec<Node>)>, else_seen: bool, otherwise: Vec<Node> },
    With { pipe: Pipeline, body: Vec<Node>, else_seen: bool, otherwise: Vec<Node> },
    Range { pipe: Pipeline, body: Vec<Node>, else_seen: bool, otherwise: Vec<Node> },
}

impl Block {
    fn current(&mut self) -> &mut Vec<Node> {
        match self {
            Self::If { branches, else_seen, otherwise } => {
                if *else_seen {
                    otherwise
                } else {
                    // An `if` block always starts with its first branch.
                    match branches.last_mut() {
                        Some(b) => &mut b.1,
                        None => otherwise,
                    }
                }
            }
            Self::With { body, else_seen, otherwise, .. } | Self::Range { body, else_seen, otherwise, .. } => {
                if *else_seen {
                    otherwise
                } else {
                    body
                }
            }
        }
    }

    fn close(self) -> Node {
        match self {
            Self::If { branches, otherwise, .. } => Node::If { branches, otherwise },
            Self::With { pipe, body, otherwise, .. } => Node::With { pipe, body, otherwise },
            Self::Range { pipe, body, otherwise, .. } => Node::Range { pipe, body, otherwise },
        }
    }
}

impl Template {
    /// Parses a template.
    ///
    /// # Errors
    /// [`TemplateError::Parse`] for syntax this renderer does not accept.
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let mut root: Vec<Node> = Vec::new();
        let mut stack: Vec<(Block, usize)> = Vec::new();
        for item in lex(src)? {
            let (line, toks) = match item {
                Item::Text(t) => {
                    let target = match stack.last_mut() {
                        Some((b, _)) => b.current(),
                        None => &mut root,
                    };
                    target.push(Node::Text(t));
                    continue;
                }
                Item::Action { line, toks } => (line, toks),
            };
            let keyword = match toks.first() {
                Some(Tok::Ident(k)) if matches!(k.as_str(), "if" | "else" | "end" | "with" | "range") => Some(k.clone()),
                Some(Tok::Ident(k)) if matches!(k.as_str(), "define" | "template" | "block" | "break" | "continue") => {
                    return perr(line, format!("{{{{{k}}}}} is not supported in mail templates"));
                }
                _ => None,
            };
            match keyword.as_deref() {
                Some("if") => {
                    let pipe = parse_pipeline(&toks[1..], line)?;
                    stack.push((Block::If { branches: vec![(pipe, Vec::new())], else_seen: false, otherwise: Vec::new() }, line));
                }
                Some("with") => {
                    let pipe = parse_pipeline(&toks[1..], line)?;
                    stack.push((Block::With { pipe, body: Vec::new(), else_seen: false, otherwise: Vec::new() }, line));
                }
                Some("range") => {
                    let pipe = parse_pipeline(&toks[1..], line)?;
                    stack.push((Block::Range { pipe, body: Vec::new(), else_seen: false, otherwise: Vec::new() }, line));
                }
                Some("else") => {
                    let Some((block, _)) = stack.last_mut() else {
                        return perr(line, "unexpected {{else}}");
                    };
                    let else_if = matches!(toks.get(1), Some(Tok::Ident(k)) if k == "if");
                    match block {
                        Block::If { branches, else_seen: false, .. } if else_if => {
                            branches.push((parse_pipeline(&toks[2..], line)?, Vec::new()));
                        }
                        Block::If { else_seen: es @ false, .. }
                        | Block::With { else_seen: es @ false, .. }
                        | Block::Range { else_seen: es @ false, .. }
                            if toks.len() == 1 =>
                        {
                            *es = true;
                        }
                        _ => return perr(line, "unexpected {{else}}"),
                    }
                }
                Some("end") => {
                    if toks.len() != 1 {
                        return perr(line, "unexpected tokens after {{end}}");
                    }
                    let Some((block, _)) = stack.pop() else {
                        return perr(line, "unexpected {{end}}");
                    };
                    let node = block.close();
                    match stack.last_mut() {
                        Some((b, _)) => b.current().push(node),
                        None => root.push(node),
                    }
                }
                _ => {
                    let pipe = parse_pipeline(&toks, line)?;
                    match stack.last_mut() {
                        Some((b, _)) => b.current().push(Node::Action(pipe)),
                        None => root.push(Node::Action(pipe)),
                    }
                }
            }
        }
        if let Some((_, line)) = stack.last() {
            return perr(*line, "unexpected EOF: missing {{end}}");
        }
        Ok(Self { nodes: root })
    }

    /// Executes the template over `data`, escaping every value for its HTML context.
    ///
    /// # Errors
    /// [`TemplateError::Exec`] when a function fails or a value lands in a context this
    /// renderer cannot escape safely (inside `<script>`, `<style>`, event-handler or
    /// `style` attributes).
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut ctx = HtmlContext::default();
        let exec = Exec { root: data };
        exec.walk(&self.nodes, data, &mut ctx, &mut out)?;
        Ok(out)
    }
}

fn parse_pipeline(toks: &[Tok], line: usize) -> Result<Pipeline, TemplateError> {
    let mut pos = 0;
    let p = parse_pipe(toks, &mut pos, line)?;
    if pos != toks.len() {
        return perr(line, "unexpected ) in action");
    }
    Ok(p)
}

fn parse_pipe(toks: &[Tok], pos: &mut usize, line: usize) -> Result<Pipeline, TemplateError> {
    let mut cmds = Vec::new();
    let mut cmd: Vec<Arg> = Vec::new();
    while let Some(t) = toks.get(*pos) {
        match t {
            Tok::Pipe => {
                if cmd.is_empty() {
                    return perr(line, "missing command before |");
                }
                cmds.push(std::mem::take(&mut cmd));
                *pos += 1;
            }
            Tok::RParen | Tok::RParenFields(_) => break,
            Tok::LParen => {
                *pos += 1;
                let sub = parse_pipe(toks, pos, line)?;
                let fields = match toks.get(*pos) {
                    Some(Tok::RParen) => Vec::new(),
                    Some(Tok::RParenFields(f)) => f.clone(),
                    _ => return perr(line, "unclosed left paren"),
                };
                *pos += 1;
                cmd.push(Arg::Sub(sub, fields));
            }
            Tok::Dot(f) => {
                cmd.push(Arg::Dot(f.clone()));
                *pos += 1;
            }
            Tok::Root(f) => {
                cmd.push(Arg::Root(f.clone()));
                *pos += 1;
            }
            Tok::Str(s) => {
                cmd.push(Arg::Lit(Value::String(s.clone())));
                *pos += 1;
            }
            Tok::Num(n) => {
                cmd.push(Arg::Lit(serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)));
                *pos += 1;
            }
            Tok::Ident(name) => {
                let arg = match name.as_str() {
                    "true" => Arg::Lit(Value::Bool(true)),
                    "false" => Arg::Lit(Value::Bool(false)),
                    "nil" => Arg::Lit(Value::Null),
                    other => match Func::lookup(other) {
                        Some(f) => Arg::Func(f),
                        None => return perr(line, format!("function {other:?} not defined")),
                    },
                };
                cmd.push(arg);
                *pos += 1;
            }
        }
    }
    if cmd.is_empty() {
        return perr(line, if cmds.is_empty() { "missing value for command" } else { "missing command after |" });
    }
    cmds.push(cmd);
    for (i, c) in cmds.iter().enumerate() {
        let is_call = matches!(c.first(), Some(Arg::Func(_)));
        if !is_call && c.len() > 1 {
            return perr(line, "can't give argument to non-function");
        }
        if i > 0 && !is_call {
            return perr(line, "non-function in a pipeline stage after |");
        }
        if c.iter().skip(1).any(|a| matches!(a, Arg::Func(_))) {
            return perr(line, "functions as arguments need parentheses");
        }
    }
    Ok(Pipeline { line, cmds })
}

// ---------------------------------------------------------------------------------------
// Execution.

struct Exec<'a> {
    root: &'a Value,
}

fn xerr<T>(line: usize, msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError::Exec { line, msg: msg.into() })
}

impl Exec<'_> {
    fn walk(&self, nodes: &[Node], dot: &Value, ctx: &mut HtmlContext, out: &mut String) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => ctx.feed(t, out),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    let s = go_print(&v);
                    let escaped = ctx.escape(&s).map_err(|msg| TemplateError::Exec { line: p.line, msg })?;
                    out.push_str(&escaped);
                }
                Node::If { branches, otherwise } => {
                    let mut taken = false;
                    for (cond, body) in branches {
                        if truth(&self.pipeline(cond, dot)?) {
                            self.walk(body, dot, ctx, out)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.walk(otherwise, dot, ctx, out)?;
                    }
                }
                Node::With { pipe, body, otherwise } => {
                    let v = self.pipeline(pipe, dot)?;
                    if truth(&v) {
                        self.walk(body, &v, ctx, out)?;
                    } else {
                        self.walk(otherwise, dot, ctx, out)?;
                    }
                }
                Node::Range { pipe, body, otherwise } => {
                    let v = self.pipeline(pipe, dot)?;
                    let items: Vec<Value> = match &v {
                        Value::Array(a) => a.clone(),
                        Value::Object(m) => sorted_values(m),
                        Value::Null => Vec::new(),
                        Value::Number(n) if n.as_f64().is_some_and(|f| f >= 0.0 && f.fract() == 0.0) => {
                            let count = n.as_f64().map_or(0, |f| f as u64);
                            (0..count.min(10_000)).map(Value::from).collect()
                        }
                        other => return xerr(pipe.line, format!("range can't iterate over {}", go_print(other))),
                    };
                    if items.is_empty() {
                        self.walk(otherwise, dot, ctx, out)?;
                    }
                    for item in &items {
                        self.walk(body, item, ctx, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn pipeline(&self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev, p.line)?);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn command(&self, cmd: &[Arg], dot: &Value, piped: Option<Value>, line: usize) -> Result<Value, TemplateError> {
        match cmd.first() {
            Some(Arg::Func(f)) => self.call(*f, &cmd[1..], dot, piped, line),
            Some(a) => self.arg(a, dot, line),
            None => Ok(Value::Null),
        }
    }

    fn arg(&self, a: &Arg, dot: &Value, line: usize) -> Result<Value, TemplateError> {
        match a {
            Arg::Dot(fields) => fields_of(dot, fields, line),
            Arg::Root(fields) => fields_of(self.root, fields, line),
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Sub(p, fields) => fields_of(&self.pipeline(p, dot)?, fields, line),
            Arg::Func(_) => xerr(line, "function used as a value"),
        }
    }

    fn call(&self, f: Func, args: &[Arg], dot: &Value, piped: Option<Value>, line: usize) -> Result<Value, TemplateError> {
        // `and`/`or` evaluate lazily, as Go does since 1.18.
        if matches!(f, Func::And | Func::Or) {
            let n = args.len() + usize::from(piped.is_some());
            if n == 0 {
                return xerr(line, "wrong number of args: want at least 1 got 0");
            }
            let mut last = Value::Null;
            for a in args {
                last = self.arg(a, dot, line)?;
                if truth(&last) == (f == Func::Or) {
                    return Ok(last);
                }
            }
            if let Some(p) = piped {
                last = p;
            }
            return Ok(last);
        }
        let mut vals = args.iter().map(|a| self.arg(a, dot, line)).collect::<Result<Vec<_>, _>>()?;
        vals.extend(piped);
        let want = |n: usize| -> Result<(), TemplateError> {
            if vals.len() == n {
                Ok(())
            } else {
                xerr(line, format!("wrong number of args: want {n} got {}", vals.len()))
            }
        };
        Ok(match f {
            Func::And | Func::Or => Value::Null,
            Func::Not => {
                want(1)?;
                Value::Bool(!truth(&vals[0]))
            }
            Func::Eq | Func::Ne => {
                if vals.len() < 2 {
                    return xerr(line, "missing argument for comparison");
                }
                let mut any = false;
                for other in &vals[1..] {
                    if compare(&vals[0], other, line)? == std::cmp::Ordering::Equal {
                        any = true;
                    }
                }
                Value::Bool(if f == Func::Eq { any } else { !any })
            }
            Func::Lt | Func::Le | Func::Gt | Func::Ge => {
                want(2)?;
                let o = compare(&vals[0], &vals[1], line)?;
                if matches!(vals[0], Value::Bool(_)) {
                    return xerr(line, "invalid type for comparison");
                }
                Value::Bool(match f {
                    Func::Lt => o.is_lt(),
                    Func::Le => o.is_le(),
                    Func::Gt => o.is_gt(),
                    _ => o.is_ge(),
                })
            }
            Func::Len => {
                want(1)?;
                match &vals[0] {
                    Value::String(s) => Value::from(s.len()),
                    Value::Array(a) => Value::from(a.len()),
                    Value::Object(m) => Value::from(m.len()),
                    other => return xerr(line, format!("len of {}", type_name(other))),
                }
            }
            Func::Index => {
                let Some((first, keys)) = vals.split_first() else {
                    return xerr(line, "wrong number of args for index: want at least 1 got 0");
                };
                let mut cur = first.clone();
                for k in keys {
                    cur = match (&cur, k) {
                        (Value::Object(m), Value::String(s)) => m.get(s).cloned().unwrap_or(Value::Null),
                        (Value::Array(a), Value::Number(n)) => {
                            let i = n.as_f64().unwrap_or(-1.0);
                            if i < 0.0 || i.fract() != 0.0 || i as usize >= a.len() {
                                return xerr(line, format!("error calling index: index out of range: {}", go_print(k)));
                            }
                            a[i as usize].clone()
                        }
                        (Value::Null, _) => return xerr(line, "error calling index: index of untyped nil"),
                        (c, k) => {
                            return xerr(
                                line,
                                format!("error calling index: can't index item of type {} with {}", type_name(c), type_name(k)),
                            )
                        }
                    };
                }
                cur
            }
            Func::Print => Value::String(go_sprint(&vals)),
            Func::Println => {
                let mut s = vals.iter().map(go_print).collect::<Vec<_>>().join(" ");
                s.push('\n');
                Value::String(s)
            }
            Func::Printf => {
                let Some((Value::String(format), rest)) = vals.split_first() else {
                    return xerr(line, "printf needs a format string");
                };
                Value::String(go_sprintf(format, rest).map_err(|msg| TemplateError::Exec { line, msg })?)
            }
            // The final escaper applies anyway; like html/template, `html` does not escape twice.
            Func::Html => Value::String(go_sprint(&vals)),
            Func::UrlQuery => Value::String(super::escape::query_escape(&go_sprint(&vals))),
        })
    }
}

fn sorted_values(m: &Map<String, Value>) -> Vec<Value> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys.into_iter().filter_map(|k| m.get(k).cloned()).collect()
}

fn fields_of(v: &Value, fields: &[String], line: usize) -> Result<Value, TemplateError> {
    let mut cur = v;
    for f in fields {
        cur = match cur {
            Value::Object(m) => match m.get(f) {
                Some(x) => x,
                None => return Ok(Value::Null),
            },
            // A missing key or `null`: Go yields the zero value here, which prints as nothing.
            Value::Null => return Ok(Value::Null),
            other => return xerr(line, format!("can't evaluate field {f} in type {}", type_name(other))),
        };
    }
    Ok(cur.clone())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's notion of truth: the zero value of its type is false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn compare(a: &Value, b: &Value, line: usize) -> Result<std::cmp::Ordering, TemplateError> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Ok(x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Less)),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Null, Value::Null) => Ok(Ordering::Equal),
        (Value::Null, _) | (_, Value::Null) => Ok(Ordering::Less),
        _ => xerr(line, format!("incompatible types for comparison: {} and {}", type_name(a), type_name(b))),
    }
}

/// `fmt.Sprint`: a space between operands when neither side is a string.
fn go_sprint(vals: &[Value]) -> String {
    let mut s = String::new();
    for (i, v) in vals.iter().enumerate() {
        if i > 0 && !matches!(v, Value::String(_)) && !matches!(vals[i - 1], Value::String(_)) {
            s.push(' ');
        }
        s.push_str(&go_print(v));
    }
    s
}

/// `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %%`.
fn go_sprintf(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(verb @ ('s' | 'v' | 'd' | 'q')) => {
                let Some(a) = args.next() else {
                    let _ = write!(out, "%!{verb}(MISSING)");
                    continue;
                };
                match verb {
                    'd' => match a.as_f64() {
                        Some(f) if f.fract() == 0.0 => {
                            let _ = write!(out, "{}", f as i64);
                        }
                        _ => {
                            let _ = write!(out, "%!d({})", go_print(a));
                        }
                    },
                    'q' => out.push_str(&serde_json::to_string(&go_print(a)).unwrap_or_default()),
                    _ => out.push_str(&go_print(a)),
                }
            }
            Some(other) => return Err(format!("printf verb %{other} is not supported")),
            None => out.push_str("%!(NOVERB)"),
        }
    }
    Ok(out)
}

/// How Go's `fmt` prints a JSON-decoded value; `null` prints as nothing at the top level
/// (html/template skips untyped nil, golang/go#25875).
#[must_use]
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => go_value(other),
    }
}

fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), go_float),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.into_iter().map(|k| format!("{k}:{}", m.get(k).map(go_value).unwrap_or_default())).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%v` of a float64: shortest digits, exponent form when the exponent is below -4 or
/// at least 6 (`1e+06`).
#[must_use]
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let dp = exp + 1;
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let body = if dp <= 0 {
        format!("0.{}{digits}", "0".repeat(usize::try_from(-dp).unwrap_or(0)))
    } else if dp >= n {
        format!("{digits}{}", "0".repeat(usize::try_from(dp - n).unwrap_or(0)))
    } else {
        let (a, b) = digits.split_at(usize::try_from(dp).unwrap_or(0));
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, data: &Value) -> String {
        Template::parse(src).unwrap().execute(data).unwrap()
    }

    fn data() -> Value {
        json!({
            "SiteURL": "https://example.com",
            "ConfirmationURL": "https://example.com/#confirmation_token=abc-_X",
            "Email": "a+b@example.com",
            "Token": "abc-_X",
            "Data": {"full_name": "Ann & <Bob>", "n": 1, "big": 1_000_000, "f": 2.5, "tags": ["x", "y"], "nil": null, "vip": true}
        })
    }

    #[test]
    fn fields_and_text_escaping_follow_html_template() {
        let d = data();
        assert_eq!(render("Hi {{ .Data.full_name }}!", &d), "Hi Ann &amp; &lt;Bob&gt;!");
        assert_eq!(render("{{ .Email }}", &d), "a&#43;b@example.com");
        assert_eq!(render(r#"{{ "it's \"q\"" }}"#, &d), "it&#39;s &#34;q&#34;");
        assert_eq!(render("[{{ .Missing }}][{{ .Data.nope }}][{{ .Data.nil }}][{{ .Data.nope.deeper }}]", &d), "[][][][]");
        assert_eq!(
            render("{{ .Data.n }} {{ .Data.big }} {{ .Data.f }} {{ .Data.tags }} {{ .Data.vip }}", &d),
            "1 1e&#43;06 2.5 [x y] true"
        );
        assert_eq!(render("{{.}}", &json!({"b": 1, "a": "x"})), "map[a:x b:1]");
    }

    #[test]
    fn url_attributes_are_filtered_and_normalised() {
        let d = data();
        assert_eq!(
            render(r#"<a href="{{ .ConfirmationURL }}">go</a>"#, &d),
            r#"<a href="https://example.com/#confirmation_token=abc-_X">go</a>"#
        );
        let d2 = json!({"U": "javascript:alert(1)", "Q": "a b&c", "P": "https://x.example/a b\"c"});
        assert_eq!(render(r#"<a href="{{ .U }}">"#, &d2), r##"<a href="#ZgotmplZ">"##);
        assert_eq!(render(r#"<a href="{{ .P }}">"#, &d2), r#"<a href="https://x.example/a%20b%22c">"#);
        assert_eq!(render(r#"<a href="https://x.example/?q={{ .Q }}">"#, &d2), r#"<a href="https://x.example/?q=a%20b%26c">"#);
        assert_eq!(render(r#"<a href="{{ .P }}{{ .U }}">"#, &d2), r##"<a href="https://x.example/a%20b%22c#ZgotmplZ">"##);
        assert_eq!(render(r#"<img title='{{ .Q }}' src={{ .P }}>"#, &d2), r#"<img title='a b&amp;c' src=https://x.example/a%20b%22c>"#);
        assert_eq!(render(r#"<p class={{ .Q }}>"#, &d2), r#"<p class=a&#32;b&amp;c>"#);
    }

    #[test]
    fn conditionals_with_range_and_trim_markers() {
        let d = data();
        let t = "{{ if .Data.full_name -}}\n  Hello {{ .Data.full_name }}\n{{- else -}}\n  Hello\n{{- end }}.";
        assert_eq!(render(t, &d), "Hello Ann &amp; &lt;Bob&gt;.");
        assert_eq!(render(t, &json!({"Data": {}})), "Hello.");
        assert_eq!(render("{{ if .Data.x }}x{{ else if .Data.vip }}vip{{ else }}no{{ end }}", &d), "vip");
        assert_eq!(render("{{ with .Data.full_name }}[{{ . }}]{{ else }}none{{ end }}", &json!({"Data": {"full_name": "Z"}})), "[Z]");
        assert_eq!(render("{{ with .Data.none }}x{{ else }}none{{ end }}", &d), "none");
        assert_eq!(render("{{ range .Data.tags }}<{{ . }}>{{ end }}", &d), "<x><y>");
        assert_eq!(render("{{ range .Data.tags }}<b>{{ . }}</b>{{ end }}", &json!({"Data": {"tags": ["<i>"]}})), "<b>&lt;i&gt;</b>");
        assert_eq!(render("{{ range .Data.none }}x{{ else }}empty{{ end }}", &d), "empty");
        assert_eq!(render("{{ range .Data.tags }}{{ $.Token }}{{ end }}", &d), "abc-_Xabc-_X");
        assert_eq!(render("a {{/* note */}} b {{- /* trimmed */ -}} c", &d), "a  bc");
        assert_eq!(render("{{- 3 }} {{ -3 }}", &d), "3 -3");
    }

    #[test]
    fn functions() {
        let d = data();
        assert_eq!(render(r#"{{ if eq .Data.n 1 }}one{{ end }}{{ if ne .Token "x" }} ne{{ end }}"#, &d), "one ne");
        assert_eq!(render(r#"{{ if and .Data.vip (not .Data.nope) }}yes{{ end }}"#, &d), "yes");
        assert_eq!(render(r#"{{ or .Data.nope "fallback" }}"#, &d), "fallback");
        assert_eq!(render(r#"{{ len .Data.tags }} {{ index .Data.tags 1 }} {{ index .Data "full_name" | len }}"#, &d), "2 y 11");
        assert_eq!(render(r#"{{ printf "%s <%d>" .Data.full_name 3 }}"#, &d), "Ann &amp; &lt;Bob&gt; &lt;3&gt;");
        assert_eq!(render(r#"{{ print "a" 1 2 "b" }}"#, &d), "a1 2b");
        assert_eq!(render(r#"{{ .Data.full_name | html }}"#, &d), "Ann &amp; &lt;Bob&gt;");
        assert_eq!(render(r#"{{ .Data.full_name | urlquery }}"#, &d), "Ann&#43;%26&#43;%3CBob%3E");
        assert_eq!(render(r#"{{ if lt .Data.f 3 }}small{{ end }}"#, &d), "small");
    }

    #[test]
    fn comments_are_stripped_and_unsafe_contexts_refused() {
        let d = data();
        assert_eq!(render("a<!-- {{ .Token }} secret -->b", &d), "ab");
        assert_eq!(render("<title>{{ .Data.full_name }}</title>", &d), "<title>Ann &amp; &lt;Bob&gt;</title>");
        assert_eq!(render("<style>p { color: red }</style><p>{{ .Token }}</p>", &d), "<style>p { color: red }</style><p>abc-_X</p>");
        for bad in
            ["<script>var t = '{{ .Token }}'</script>", r#"<a onclick="{{ .Token }}">"#, r#"<p style="{{ .Token }}">"#, "<a {{ .Token }}>"]
        {
            let err = Template::parse(bad).unwrap().execute(&d).unwrap_err();
            assert!(matches!(err, TemplateError::Exec { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "{{ .Token ",
            "{{ if .Token }}x",
            "{{ end }}",
            "{{ else }}",
            "{{ nosuchfunc .Token }}",
            "{{ $x := .Token }}",
            "{{ template \"x\" }}",
            "{{ define \"x\" }}{{ end }}",
            "{{ .Token .Email }}",
            "{{ (.Token }}",
            "{{ \"unterminated }}",
            "{{ | len }}",
            "{{/* open }}",
        ] {
            assert!(matches!(Template::parse(bad), Err(TemplateError::Parse { .. })), "{bad} parsed");
        }
        let e = Template::parse("line1\n{{ if .X }}\n{{ bogus }}").unwrap_err();
        assert_eq!(e, TemplateError::Parse { line: 3, msg: "function \"bogus\" not defined".into() });
    }

    #[test]
    fn exec_errors() {
        let d = data();
        for bad in ["{{ .Token.Field }}", r#"{{ eq .Token 1 }}"#, "{{ index .Data.tags 9 }}", "{{ len .Data.n }}", "{{ not }}"] {
            assert!(matches!(Template::parse(bad).unwrap().execute(&d), Err(TemplateError::Exec { .. })), "{bad} executed");
        }
    }

    #[test]
    fn go_float_formatting() {
        for (f, s) in [
            (1.0, "1"),
            (2.5, "2.5"),
            (100_000.0, "100000"),
            (1e6, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-3.25, "-3.25"),
            (123_456.7, "123456.7"),
        ] {
            assert_eq!(go_float(f), s);
        }
    }
}
