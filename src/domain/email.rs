//! Email addresses: kept as given, compared through a normalised key.

use std::fmt;

/// The `email` column holds at most this many characters.
pub const MAX_EMAIL_CHARS: usize = 255;

/// Why an email address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// The value was empty.
    #[error("An email address is required")]
    Empty,
    /// The value is not an address (the message says why).
    #[error("{0}")]
    Invalid(&'static str),
}

/// An email address as the user typed it, with its comparison key.
///
/// The address keeps its case (upstream never rewrites it); lookups and uniqueness use
/// [`Email::key`], the trimmed Unicode lower-case form, so SQLite and MySQL agree on what
/// counts as the same address.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    raw: String,
}

impl Email {
    /// Accepts any non-empty string, as upstream does when no SMTP server is configured.
    ///
    /// # Errors
    /// [`EmailError::Empty`] for an empty string.
    pub fn lenient(s: &str) -> Result<Self, EmailError> {
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        Ok(Self { raw: s.to_owned() })
    }

    /// Parses an RFC 5322 `addr-spec` (UTF-8 allowed as RFC 6532 does), optionally
    /// wrapped in a display name (`Ann <a@example.com>`), which is kept verbatim as
    /// upstream stores it.
    ///
    /// # Errors
    /// [`EmailError::Empty`] or [`EmailError::Invalid`] naming the first problem found.
    pub fn parse(s: &str) -> Result<Self, EmailError> {
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        // The normalised key must fit the column too: lower-casing can lengthen a string.
        if s.chars().count() > MAX_EMAIL_CHARS || normalise(s).chars().count() > MAX_EMAIL_CHARS {
            return Err(EmailError::Invalid("mail: address longer than 255 characters"));
        }
        let spec = match (s.rfind('<'), s.ends_with('>')) {
            (Some(open), true) => &s[open + 1..s.len() - 1],
            (None, false) => s.trim(),
            _ => return Err(EmailError::Invalid("mail: unclosed angle-addr")),
        };
        validate_addr_spec(spec)?;
        Ok(Self { raw: s.to_owned() })
    }

    /// The address exactly as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The comparison key: trimmed and Unicode lower-cased.
    #[must_use]
    pub fn key(&self) -> String {
        normalise(&self.raw)
    }
}

/// The comparison key of any string claimed to be an email address.
#[must_use]
pub fn normalise(s: &str) -> String {
    s.trim().to_lowercase()
}

fn validate_addr_spec(spec: &str) -> Result<(), EmailError> {
    let Some((local, domain)) = spec.rsplit_once('@') else {
        return Err(EmailError::Invalid("mail: missing '@' or angle-addr"));
    };
    if local.is_empty() {
        return Err(EmailError::Invalid("mail: no local part"));
    }
    if domain.is_empty() {
        return Err(EmailError::Invalid("mail: no domain in addr-spec"));
    }
    let quoted_local = local.len() >= 2 && local.starts_with('"') && local.ends_with('"');
    if !quoted_local && local.contains('@') {
        return Err(EmailError::Invalid("mail: expected single address"));
    }
    let atext_ok = |c: char| c.is_alphanumeric() || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if quoted_local {
        if local[1..local.len() - 1].chars().any(|c| c.is_control()) {
            return Err(EmailError::Invalid("mail: invalid character in quoted-string"));
        }
    } else {
        if !local.chars().all(atext_ok) || local.chars().any(char::is_control) {
            return Err(EmailError::Invalid("mail: invalid string"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError::Invalid("mail: invalid string"));
        }
    }
    let domain_ok = if domain.starts_with('[') && domain.ends_with(']') {
        !domain.chars().any(|c| c.is_whitespace() || c.is_control())
    } else {
        domain.chars().all(atext_ok)
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.chars().any(char::is_control)
    };
    if !domain_ok {
        return Err(EmailError::Invalid("mail: invalid domain"));
    }
    Ok(())
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&self.raw).finish()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_display_name_and_unicode_addresses() {
        for ok in ["a@example.com", "Ann <a@example.com>", "jörg@exämple.test", "a.b+c@d.e", "\"x y\"@d.e"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@d.e",
            "a@",
            "a@b@c",
            "a b@d.e",
            "a\0@d.e",
            "a..b@d.e",
            "Ann <a@d.e",
            "a@d..e",
            &format!("{}@d.e", "a".repeat(260)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_is_its_own_error_even_when_lenient() {
        assert_eq!(Email::lenient(""), Err(EmailError::Empty));
        assert!(Email::lenient("anything goes").is_ok());
    }

    #[test]
    fn key_trims_and_lowercases_but_the_address_keeps_its_case() {
        let e = Email::parse(" Ann@Example.COM ").unwrap();
        assert_eq!(e.as_str(), " Ann@Example.COM ");
        assert_eq!(e.key(), "ann@example.com");
        assert_eq!(normalise("ÉLODIE@X.FR"), "élodie@x.fr");
    }
}
