//! Contextual escaping as Go's `html/template` does it, for the contexts mail templates
//! use: element text, quoted and unquoted attribute values, and URL attributes (filtered
//! against `javascript:` and friends, normalised, query-escaped after `?` or `#`). HTML
//! comments are removed from the output, as Go removes them. Values inside `<script>`,
//! `<style>`, event-handler, `style` or `srcset` attributes, or in tag and attribute names,
//! are refused rather than escaped by guesswork.
//!
//! The context is tracked over the template's literal text only; a value never changes it
//! (as in Go, where the context after an action is the one before it).

/// Where the output currently stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HtmlContext {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    Normal,
    /// `<script>`, `<style>`: raw text, values refused.
    Raw(&'static str),
    /// `<textarea>`, `<title>`: escaped like text.
    RcData(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attr {
    Plain,
    Url,
    /// JavaScript, CSS or srcset: values refused.
    Unsafe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delim {
    Double,
    Single,
    Unquoted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    /// Nothing yet: a value here is the scheme and must be filtered.
    None,
    /// Before `?` or `#`: normalised.
    PreQuery,
    /// After `?` or `#`: query-escaped.
    QueryOrFrag,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum State {
    #[default]
    Text,
    TagName {
        end: bool,
        name: String,
    },
    Tag(Element),
    AttrName(Element, String),
    AfterAttrName(Element, Attr),
    BeforeValue(Element, Attr),
    Value(Element, Attr, Delim, UrlPart),
    Comment,
    Content(Element),
}

fn classify_element(name: &str) -> Element {
    match name.to_ascii_lowercase().as_str() {
        "script" => Element::Raw("script"),
        "style" => Element::Raw("style"),
        "textarea" => Element::RcData("textarea"),
        "title" => Element::RcData("title"),
        _ => Element::Normal,
    }
}

/// Go's `attrType`, reduced to what we distinguish.
fn classify_attr(name: &str) -> Attr {
    let mut n = name.to_ascii_lowercase();
    if let Some(rest) = n.strip_prefix("data-") {
        n = rest.to_owned();
    }
    if let Some((ns, local)) = n.split_once(':') {
        if ns == "xmlns" {
            return Attr::Url;
        }
        n = local.to_owned();
    }
    match n.as_str() {
        "action" | "archive" | "background" | "cite" | "classid" | "codebase" | "data" | "formaction" | "href" | "icon" | "longdesc"
        | "manifest" | "poster" | "profile" | "src" | "usemap" | "xmlns" => Attr::Url,
        "style" | "srcset" => Attr::Unsafe,
        _ if n.starts_with("on") => Attr::Unsafe,
        _ if n.contains("src") || n.contains("uri") || n.contains("url") => Attr::Url,
        _ => Attr::Plain,
    }
}

impl HtmlContext {
    /// Appends literal template text to `out`, without comments, and advances the context.
    pub fn feed(&mut self, text: &str, out: &mut String) {
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            let Some(c) = rest.chars().next() else { break };
            let step = c.len_utf8();
            match &mut self.state {
                State::Text => {
                    if rest.starts_with("<!--") {
                        self.state = State::Comment;
                        i += 4;
                        continue;
                    }
                    if c == '<' {
                        let next = rest[1..].chars().next();
                        if next.is_some_and(|n| n.is_ascii_alphabetic()) {
                            self.state = State::TagName { end: false, name: String::new() };
                        } else if next == Some('/') && rest[2..].chars().next().is_some_and(|n| n.is_ascii_alphabetic()) {
                            self.state = State::TagName { end: true, name: String::new() };
                            out.push_str("</");
                            i += 2;
                            continue;
                        }
                    }
                    out.push(c);
                    i += step;
                }
                State::Comment => {
                    if rest.starts_with("-->") {
                        self.state = State::Text;
                        i += 3;
                    } else {
                        i += step;
                    }
                }
                State::TagName { end, name } => {
                    if c.is_ascii_alphanumeric() || c == '-' || c == ':' {
                        name.push(c);
                        out.push(c);
                        i += step;
                    } else {
                        let element = if *end { Element::Normal } else { classify_element(name) };
                        self.state = State::Tag(element);
                    }
                }
                State::Tag(el) => {
                    let el = *el;
                    if c == '>' {
                        self.state = match el {
                            Element::Normal => State::Text,
                            other => State::Content(other),
                        };
                    } else if !(c.is_whitespace() || c == '/') {
                        self.state = State::AttrName(el, c.to_string());
                    }
                    out.push(c);
                    i += step;
                }
                State::AttrName(el, name) => {
                    if c.is_whitespace() || c == '=' || c == '>' || c == '/' {
                        let (el, attr) = (*el, classify_attr(name));
                        if c == '=' {
                            self.state = State::BeforeValue(el, attr);
                        } else if c.is_whitespace() {
                            self.state = State::AfterAttrName(el, attr);
                        } else {
                            self.state = State::Tag(el);
                            continue;
                        }
                    } else {
                        name.push(c);
                    }
                    out.push(c);
                    i += step;
                }
                State::AfterAttrName(el, attr) => {
                    if c == '=' {
                        self.state = State::BeforeValue(*el, *attr);
                    } else if !c.is_whitespace() {
                        self.state = State::Tag(*el);
                        continue;
                    }
                    out.push(c);
                    i += step;
                }
                State::BeforeValue(el, attr) => {
                    let (el, attr) = (*el, *attr);
                    if c == '>' {
                        self.state = State::Tag(el);
                        continue;
                    }
                    if c == '"' {
                        self.state = State::Value(el, attr, Delim::Double, UrlPart::None);
                    } else if c == '\'' {
                        self.state = State::Value(el, attr, Delim::Single, UrlPart::None);
                    } else if !c.is_whitespace() {
                        self.state = State::Value(el, attr, Delim::Unquoted, UrlPart::None);
                        continue;
                    }
                    out.push(c);
                    i += step;
                }
                State::Value(el, attr, delim, part) => {
                    let ends = match delim {
                        Delim::Double => c == '"',
                        Delim::Single => c == '\'',
                        Delim::Unquoted => c.is_whitespace() || c == '>',
                    };
                    if ends {
                        let (el, unquoted) = (*el, *delim == Delim::Unquoted);
                        self.state = State::Tag(el);
                        if unquoted {
                            continue;
                        }
                    } else if *attr == Attr::Url {
                        if c == '#' || c == '?' {
                            *part = UrlPart::QueryOrFrag;
                        } else if !c.is_whitespace() && *part == UrlPart::None {
                            *part = UrlPart::PreQuery;
                        }
                    }
                    out.push(c);
                    i += step;
                }
                State::Content(el) => {
                    let name = match el {
                        Element::Raw(n) | Element::RcData(n) => *n,
                        Element::Normal => "",
                    };
                    let closes = rest.len() > name.len() + 2
                        && rest.starts_with("</")
                        && rest[2..2 + name.len()].eq_ignore_ascii_case(name)
                        && !rest[2 + name.len()..].starts_with(|ch: char| ch.is_ascii_alphanumeric());
                    if closes {
                        self.state = State::TagName { end: true, name: String::new() };
                        out.push_str("</");
                        i += 2;
                    } else {
                        out.push(c);
                        i += step;
                    }
                }
            }
        }
    }

    /// Escapes a value for the current context.
    ///
    /// # Errors
    /// The reason, when values cannot be placed safely here.
    pub fn escape(&mut self, value: &str) -> Result<String, String> {
        if let State::BeforeValue(el, attr) = self.state {
            self.state = State::Value(el, attr, Delim::Unquoted, UrlPart::None);
        }
        match &self.state {
            State::Text | State::Content(Element::RcData(_) | Element::Normal) => Ok(html_escape(value)),
            State::Comment => Ok(String::new()),
            State::Value(_, Attr::Plain, delim, _) => Ok(attr_escape(value, *delim)),
            State::Value(_, Attr::Url, delim, part) => {
                let url = match part {
                    UrlPart::None => url_normalise(&url_filter(value)),
                    UrlPart::PreQuery => url_normalise(value),
                    UrlPart::QueryOrFrag => query_escape_bytes(value),
                };
                Ok(attr_escape(&url, *delim))
            }
            State::Value(_, Attr::Unsafe, ..) => Err("values inside event-handler, style or srcset attributes are not supported".into()),
            State::Content(Element::Raw(name)) => Err(format!("values inside <{name}> are not supported")),
            State::TagName { .. } | State::Tag(_) | State::AttrName(..) | State::AfterAttrName(..) | State::BeforeValue(..) => {
                Err("values in tag or attribute names are not supported".into())
            }
        }
    }
}

fn attr_escape(v: &str, delim: Delim) -> String {
    if delim == Delim::Unquoted {
        nospace_escape(v)
    } else {
        html_escape(v)
    }
}

/// Go's `htmlEscaper` (element text and quoted attributes).
#[must_use]
pub fn html_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '+' => out.push_str("&#43;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `htmlNospaceEscaper` (unquoted attribute values).
fn nospace_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\0' => out.push_str("&#xfffd;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\u{b}' => out.push_str("&#11;"),
            '\u{c}' => out.push_str("&#12;"),
            '\r' => out.push_str("&#13;"),
            ' ' => out.push_str("&#32;"),
            '"' => out.push_str("&#34;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '+' => out.push_str("&#43;"),
            '<' => out.push_str("&lt;"),
            '=' => out.push_str("&#61;"),
            '>' => out.push_str("&gt;"),
            '`' => out.push_str("&#96;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `urlFilter`: only `http`, `https` and `mailto` schemes (or none) pass.
fn url_filter(v: &str) -> String {
    if let Some(colon) = v.find(':') {
        if !v[..colon].contains('/') {
            let scheme = v[..colon].to_ascii_lowercase();
            if !matches!(scheme.as_str(), "http" | "https" | "mailto") {
                return "#ZgotmplZ".into();
            }
        }
    }
    v.to_owned()
}

fn url_normalise(v: &str) -> String {
    url_process(v, true)
}

fn query_escape_bytes(v: &str) -> String {
    url_process(v, false)
}

/// Go's `urlquery` function (`url.QueryEscape`): spaces become `+`.
#[must_use]
pub fn query_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `urlProcessor`: percent-encodes what may not appear in a URL (`norm`), or everything
/// but unreserved characters (query parts).
fn url_process(v: &str, norm: bool) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        let keep = match b {
            b'!' | b'#' | b'$' | b'&' | b'*' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' | b'[' | b']' | b'%' => norm,
            b'-' | b'.' | b'_' | b'~' => true,
            b if b.is_ascii_alphanumeric() => true,
            _ => false,
        };
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ctx: &mut HtmlContext, s: &str) -> String {
        let mut out = String::new();
        ctx.feed(s, &mut out);
        out
    }

    #[test]
    fn contexts_follow_the_markup() {
        let mut c = HtmlContext::default();
        assert_eq!(feed(&mut c, "<p>x<!-- hidden --> "), "<p>x ");
        assert_eq!(c.escape("<&>").unwrap(), "&lt;&amp;&gt;");
        feed(&mut c, r#"<a class="big" href=""#);
        assert_eq!(c.escape("vbscript:x").unwrap(), "#ZgotmplZ");
        assert_eq!(c.escape("HTTPS://ok.example/é").unwrap(), "HTTPS://ok.example/%C3%A9");
        feed(&mut c, r#"/path?x="#);
        assert_eq!(c.escape("a/b c").unwrap(), "a%2Fb%20c");
        feed(&mut c, r#"">text</a><script>if (a < b) {"#);
        assert!(c.escape("x").is_err());
        assert_eq!(feed(&mut c, "}</script><b>"), "}</script><b>");
        assert_eq!(c.escape("'").unwrap(), "&#39;");
    }

    #[test]
    fn escapers_match_go_tables() {
        assert_eq!(html_escape("\"'&+<>\0"), "&#34;&#39;&amp;&#43;&lt;&gt;\u{FFFD}");
        assert_eq!(nospace_escape("a b=`"), "a&#32;b&#61;&#96;");
        assert_eq!(query_escape("a b&c/é"), "a+b%26c%2F%C3%A9");
        assert_eq!(url_normalise("https://x/a b'()"), "https://x/a%20b%27%28%29");
        assert_eq!(url_filter("mailto:a@b"), "mailto:a@b");
        assert_eq!(url_filter("/relative:path"), "/relative:path");
    }
}
