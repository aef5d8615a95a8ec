//! External identities: an account at an OAuth provider linked to a user, and the rules
//! that decide how a provider's answer matches a user (EXTERNAL.md 1.4, with
//! WEAKNESSES.md 1, 16 and 42 fixed).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::email::normalise;

/// One address a provider reports for its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEmail {
    /// The address as the provider spells it.
    pub address: String,
    /// The provider says its user proved control of the address.
    pub verified: bool,
    /// The provider's main address for its user.
    pub primary: bool,
}

/// What a provider says about the user who just signed in there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderUser {
    /// The provider's stable id for the account (`sub`, numeric id, account UUID...).
    pub id: String,
    /// Addresses, in the provider's order; never empty, none blank.
    pub emails: Vec<ProviderEmail>,
    /// `full_name`, `avatar_url` and, for Facebook, `slug`.
    pub metadata: Map<String, Value>,
    /// The provider's profile as received (stored with the identity, never in tokens).
    pub profile: Map<String, Value>,
}

impl ProviderUser {
    /// The provider metadata without empty values, as it is merged into `user_metadata`.
    #[must_use]
    pub fn user_metadata(&self) -> Map<String, Value> {
        self.metadata
            .iter()
            .filter(|(_, v)| match v {
                Value::Null => false,
                Value::String(s) => !s.is_empty(),
                _ => true,
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The address a new account is created with: the first primary one, else the first.
    #[must_use]
    pub fn signup_email(&self) -> Option<&ProviderEmail> {
        self.emails.iter().find(|e| e.primary).or_else(|| self.emails.first())
    }

    /// The addresses through which this account may be linked to an existing user: only
    /// those the provider says are verified, whatever `MAILER_AUTOCONFIRM` says (upstream
    /// also linked unverified ones under autoconfirm, WEAKNESSES.md 1).
    pub fn linkable_emails(&self) -> impl Iterator<Item = &ProviderEmail> {
        self.emails.iter().filter(|e| e.verified)
    }

    /// The first address equal to `email` once both are normalised (upstream compared them
    /// case-sensitively, WEAKNESSES.md 16).
    #[must_use]
    pub fn email_matching(&self, email: &str) -> Option<&ProviderEmail> {
        let key = normalise(email);
        self.emails.iter().find(|e| normalise(&e.address) == key)
    }
}

/// The canonical (lower-case) form of a provider name as given in `?provider=`; it is the
/// form stored in `app_metadata.provider` and in identities (WEAKNESSES.md 42).
#[must_use]
pub fn provider_name(given: &str) -> String {
    given.trim().to_ascii_lowercase()
}

/// One row of the identities table: an account at a provider, linked to a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Tenant (the user's).
    pub instance_id: Uuid,
    /// Primary key.
    pub id: Uuid,
    /// The linked user.
    pub user_id: Uuid,
    /// Lower-case provider name.
    pub provider: String,
    /// The provider's id for the account; unique per (instance, provider).
    pub provider_id: String,
    /// The address the account was matched or created with.
    pub email: String,
    /// Whether the provider said that address is verified.
    pub email_verified: bool,
    /// The provider's profile as last received.
    pub profile: Map<String, Value>,
    /// When the link was made.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
    /// Last sign-in through this identity.
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl Identity {
    /// A new link of `user_id` to the provider account, made at `now`.
    #[must_use]
    pub fn new(instance_id: Uuid, user_id: Uuid, provider: &str, pu: &ProviderUser, email: &ProviderEmail, now: DateTime<Utc>) -> Self {
        Self {
            instance_id,
            id: Uuid::new_v4(),
            user_id,
            provider: provider.to_owned(),
            provider_id: pu.id.clone(),
            email: email.address.clone(),
            email_verified: email.verified,
            profile: pu.profile.clone(),
            created_at: now,
            updated_at: now,
            last_sign_in_at: Some(now),
        }
    }

    /// Refreshes what the provider said at this sign-in.
    pub fn refresh(&mut self, pu: &ProviderUser, now: DateTime<Utc>) {
        if let Some(e) = pu.email_matching(&self.email).or_else(|| pu.signup_email()) {
            self.email.clone_from(&e.address);
            self.email_verified = e.verified;
        }
        self.profile.clone_from(&pu.profile);
        self.updated_at = now;
        self.last_sign_in_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn email(a: &str, verified: bool, primary: bool) -> ProviderEmail {
        ProviderEmail { address: a.into(), verified, primary }
    }

    fn pu() -> ProviderUser {
        ProviderUser {
            id: "42".into(),
            emails: vec![email("second@example.com", false, false), email("Main@Example.com", true, true)],
            metadata: json!({"full_name": "Ann", "avatar_url": "", "slug": null}).as_object().cloned().unwrap(),
            profile: Map::new(),
        }
    }

    #[test]
    fn metadata_skips_empty_values() {
        assert_eq!(Value::Object(pu().user_metadata()), json!({"full_name": "Ann"}));
    }

    #[test]
    fn signup_email_prefers_primary() {
        assert_eq!(pu().signup_email().unwrap().address, "Main@Example.com");
        let mut p = pu();
        p.emails[1].primary = false;
        assert_eq!(p.signup_email().unwrap().address, "second@example.com");
        p.emails.clear();
        assert!(p.signup_email().is_none());
    }

    #[test]
    fn only_verified_addresses_link() {
        let p = pu();
        let linkable: Vec<&str> = p.linkable_emails().map(|e| e.address.as_str()).collect();
        assert_eq!(linkable, ["Main@Example.com"]);
    }

    #[test]
    fn invite_matching_ignores_case() {
        assert_eq!(pu().email_matching(" main@example.COM").unwrap().address, "Main@Example.com");
        assert!(pu().email_matching("other@example.com").is_none());
    }

    #[test]
    fn provider_names_are_lower_case() {
        assert_eq!(provider_name("GitHub"), "github");
        assert_eq!(provider_name(" SAML "), "saml");
    }

    #[test]
    fn refresh_keeps_the_linked_address() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let p = pu();
        let mut i = Identity::new(Uuid::nil(), Uuid::nil(), "github", &p, &p.emails[0], now);
        assert!(!i.email_verified);
        let mut p2 = p.clone();
        p2.emails[0].verified = true;
        i.refresh(&p2, now + chrono::Duration::seconds(5));
        assert_eq!(i.email, "second@example.com");
        assert!(i.email_verified);
        assert_eq!(i.last_sign_in_at, Some(now + chrono::Duration::seconds(5)));
    }
}
