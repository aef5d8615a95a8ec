//! Links in mails (HOOKS_AND_MAIL.md 2.5): built from `SITE_URL`, the configured path and
//! the token fragment, never from the request's `Host` or `X-Forwarded-*`.

use url::Url;

/// Builds the `ConfirmationURL`.
///
/// `referrer` is used only when the path setting is empty and the referrer's host equals the
/// site's host.
#[must_use]
pub fn confirmation_url(referrer: Option<&str>, site_url: &str, path: &str, fragment: &str) -> String {
    let Ok(site) = Url::parse(site_url) else {
        return format!("{site_url}{path}{}", if fragment.is_empty() { String::new() } else { format!("#{fragment}") });
    };
    let referrer = referrer.and_then(|r| Url::parse(r).ok()).filter(|r| r.host_str() == site.host_str());
    let base = match (&referrer, path.is_empty()) {
        (Some(r), true) => r.clone(),
        _ => site.clone(),
    };
    let (mut out, bare_site) = if path.is_empty() {
        (base.clone(), referrer.is_none() && site_url_has_no_path(site_url))
    } else {
        (base.join(path).unwrap_or(base), false)
    };
    out.set_fragment(None);
    let mut s = out.to_string();
    if bare_site && s.ends_with('/') {
        // Go's url keeps "https://host" without the slash that Url::parse adds.
        s.pop();
    }
    if !fragment.is_empty() {
        s.push('#');
        s.push_str(fragment);
    }
    s
}

fn site_url_has_no_path(site_url: &str) -> bool {
    site_url.split_once("://").is_some_and(|(_, rest)| !rest.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::confirmation_url as u;

    #[test]
    fn upstream_cases() {
        assert_eq!(u(None, "https://test.example.com", "/templates/confirm.html", ""), "https://test.example.com/templates/confirm.html");
        assert_eq!(
            u(None, "https://test.example.com/removedpath", "/templates/confirm.html", ""),
            "https://test.example.com/templates/confirm.html"
        );
        assert_eq!(u(None, "https://test.example.com/", "/trailingslash/", ""), "https://test.example.com/trailingslash/");
        assert_eq!(u(None, "https://test.example.com", "f", "fragment"), "https://test.example.com/f#fragment");
        assert_eq!(
            u(Some("https://test.example.com/admin"), "https://test.example.com", "", "fragment"),
            "https://test.example.com/admin#fragment"
        );
        assert_eq!(
            u(Some("https://test.example.com/admin"), "https://test.example.com", "f", "fragment"),
            "https://test.example.com/f#fragment"
        );
        assert_eq!(u(None, "https://test.example.com", "", "fragment"), "https://test.example.com#fragment");
    }

    #[test]
    fn default_path_and_foreign_referrer() {
        assert_eq!(u(None, "https://site.example/app", "/", "confirmation_token=abc"), "https://site.example/#confirmation_token=abc");
        assert_eq!(u(Some("https://evil.example/x"), "https://site.example", "", "t=1"), "https://site.example#t=1");
    }
}
