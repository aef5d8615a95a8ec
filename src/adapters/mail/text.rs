//! The plain-text alternative of a rendered HTML mail: tags dropped, blocks on their own
//! lines, links written out as `label (url)`, entities decoded.
//!
//! Mail bodies are short and simple (a heading, a few paragraphs, a link), so a small
//! scanner does; a full HTML5 parser (`html2text` and its html5ever tree) would be most of
//! the compile time of this adapter for no visible gain.

/// Converts a rendered HTML body to readable plain text.
#[must_use]
pub fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut link: Option<(String, usize)> = None;
    let mut skip_until: Option<&'static str> = None;
    let mut rest = html;
    while !rest.is_empty() {
        if let Some(end_tag) = skip_until {
            match find_ci(rest, end_tag) {
                Some(i) => {
                    rest = &rest[i..];
                    skip_until = None;
                }
                None => break,
            }
            continue;
        }
        let Some(lt) = rest.find('<') else {
            push_text(&mut out, rest);
            break;
        };
        push_text(&mut out, &rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(gt) = tag_end(rest) else {
            push_text(&mut out, rest);
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let (closing, name) = match tag.strip_prefix('/') {
            Some(t) => (true, tag_name(t)),
            None => (false, tag_name(tag)),
        };
        match name.as_str() {
            "head" | "style" | "script" | "title" if !closing => {
                skip_until = Some(match name.as_str() {
                    "head" => "</head",
                    "style" => "</style",
                    "script" => "</script",
                    _ => "</title",
                });
            }
            "br" => newline(&mut out, 1),
            "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "ul" | "ol" | "blockquote" | "hr" | "section" | "header"
            | "footer" | "center" => newline(&mut out, 2),
            "tr" | "li" => {
                newline(&mut out, 1);
                if name == "li" && !closing {
                    out.push_str("- ");
                }
            }
            "td" | "th" if !closing && !out.ends_with(['\n', ' ']) && !out.is_empty() => out.push(' '),
            "a" if !closing => link = attr(tag, "href").map(|h| (decode_entities(&h), out.len())),
            "a" => {
                if let Some((href, start)) = link.take() {
                    let label = out.get(start..).unwrap_or_default().trim().to_owned();
                    let href = href.trim();
                    if !href.is_empty() && !href.starts_with('#') && label != href {
                        if label.is_empty() {
                            out.push_str(href);
                        } else {
                            out.push_str(" (");
                            out.push_str(href);
                            out.push(')');
                        }
                    }
                }
            }
            _ => {}
        }
    }
    tidy(&out)
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.to_ascii_lowercase();
    h.find(needle)
}

/// The index of the `>` closing the tag at the start of `s`, skipping quoted values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn tag_name(tag: &str) -> String {
    tag.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase()
}

/// The value of attribute `name` in a tag's source.
fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let start = from + pos;
        from = start + name.len();
        let before_ok = start == 0 || lower[..start].ends_with(|c: char| c.is_whitespace());
        let after = tag[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let v = after[1..].trim_start();
        return Some(match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or_default().to_owned(),
            _ => v.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or_default().to_owned(),
        });
    }
    None
}

fn push_text(out: &mut String, raw: &str) {
    let text = decode_entities(raw);
    for c in text.chars() {
        if c.is_whitespace() && c != '\u{a0}' {
            if !out.is_empty() && !out.ends_with([' ', '\n']) {
                out.push(' ');
            }
        } else if c == '\u{a0}' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
}

fn newline(out: &mut String, n: usize) {
    while out.ends_with(' ') {
        out.pop();
    }
    if out.is_empty() {
        return;
    }
    let have = out.chars().rev().take_while(|c| *c == '\n').count();
    for _ in have..n {
        out.push('\n');
    }
}

fn tidy(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).collect();
    let mut out = String::new();
    let mut blank = 0;
    for l in lines {
        if l.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(l);
    }
    out.push('\n');
    out
}

/// Decodes the entities Go's escapers produce, plus the common named ones.
#[must_use]
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest[1..].find(';').map(|i| i + 1).filter(|i| *i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_body_reads_well() {
        let html = "<h2>Confirm your signup</h2>\n\n<p>Follow this link to confirm your user:</p>\n<p><a href=\"https://x.example/#confirmation_token=a&amp;b\">Confirm your email address</a></p>\n<p>This link is valid for 24 hours.</p>\n";
        assert_eq!(
            html_to_text(html),
            "Confirm your signup\n\nFollow this link to confirm your user:\n\nConfirm your email address (https://x.example/#confirmation_token=a&b)\n\nThis link is valid for 24 hours.\n"
        );
    }

    #[test]
    fn head_style_comments_and_lists_are_handled() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body><!-- c --><p>Hi &lt;Ann&gt; &#43;&#34;</p><ul><li>one</li><li>two<br>2</li></ul><a href='https://a.example'>https://a.example</a> <a href=\"#top\">top</a></body></html>";
        assert_eq!(html_to_text(html), "Hi <Ann> +\"\n\n- one\n- two\n2\n\nhttps://a.example top\n");
    }

    #[test]
    fn entities() {
        assert_eq!(decode_entities("a &amp; b &#39; &#x41; &bogus; & c"), "a & b ' A &bogus; & c");
    }
}
