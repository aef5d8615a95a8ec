//! Where the external login sends the browser back (EXTERNAL.md 1.1 step 3, 1.5, 1.6).

use url::Url;

/// The `Referer` worth keeping: one whose host name equals `SITE_URL`'s (scheme and port
/// ignored, as upstream).
#[must_use]
pub fn kept_referrer(referer: Option<&str>, site_url: &str) -> Option<String> {
    let referer = referer.filter(|r| !r.is_empty())?;
    let site_host = Url::parse(site_url).ok()?.host_str()?.to_owned();
    let r = Url::parse(referer).ok()?;
    (r.host_str()? == site_host).then(|| referer.to_owned())
}

/// The target of the final redirect: `EXTERNAL_REDIRECTURL`, else the kept referrer, else
/// `SITE_URL`.
#[must_use]
pub fn redirect_target(redirect_url: &str, referrer: Option<&str>, site_url: &str) -> String {
    if !redirect_url.is_empty() {
        return redirect_url.to_owned();
    }
    referrer.filter(|r| !r.is_empty()).unwrap_or(site_url).to_owned()
}

/// `target#k=v&...` (form-encoded, in the given order), appended with `#` even when the
/// target already has a fragment, as upstream does.
#[must_use]
pub fn with_fragment(target: &str, pairs: &[(&str, &str)]) -> String {
    let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("{target}#{encoded}")
}

/// `target` with `code=<code>` added to its query (before any fragment): the
/// authorization-code flow's redirect.
#[must_use]
pub fn with_code(target: &str, code: &str) -> String {
    let (base, fragment) = match target.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (target, None),
    };
    let param = url::form_urlencoded::Serializer::new(String::new()).append_pair("code", code).finish();
    let sep = if base.contains('?') {
        if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    let mut out = format!("{base}{sep}{param}");
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "https://example.netlify.com";

    #[test]
    fn referrer_must_share_the_sites_host() {
        assert_eq!(kept_referrer(Some("https://example.netlify.com/admin"), SITE).as_deref(), Some("https://example.netlify.com/admin"));
        assert_eq!(kept_referrer(Some("http://example.netlify.com:8080/x"), SITE).as_deref(), Some("http://example.netlify.com:8080/x"));
        assert_eq!(kept_referrer(Some("https://evil.example/admin"), SITE), None);
        assert_eq!(kept_referrer(Some("https://example.netlify.com.evil.example/"), SITE), None);
        assert_eq!(kept_referrer(Some("not a url"), SITE), None);
        assert_eq!(kept_referrer(None, SITE), None);
    }

    #[test]
    fn target_order() {
        assert_eq!(redirect_target("https://r.example/cb", Some("https://example.netlify.com/admin"), SITE), "https://r.example/cb");
        assert_eq!(redirect_target("", Some("https://example.netlify.com/admin"), SITE), "https://example.netlify.com/admin");
        assert_eq!(redirect_target("", None, SITE), SITE);
    }

    #[test]
    fn fragments_and_codes() {
        assert_eq!(
            with_fragment("https://s.example/a#x", &[("error", "access_denied"), ("error_description", "Signups not allowed")]),
            "https://s.example/a#x#error=access_denied&error_description=Signups+not+allowed"
        );
        assert_eq!(with_code("https://s.example/a", "c1"), "https://s.example/a?code=c1");
        assert_eq!(with_code("https://s.example/a?x=1#f", "c/1"), "https://s.example/a?x=1&code=c%2F1#f");
        assert_eq!(with_code("https://s.example/a?", "c"), "https://s.example/a?code=c");
    }
}
