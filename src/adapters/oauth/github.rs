//! GitHub.com, or GitHub Enterprise Server through `GOTRUE_EXTERNAL_GITHUB_URL` (its API
//! then lives under `<URL>/api/v3`, EXTERNAL.md 2.3).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::{base_url, id_text, name_and_avatar, require_id, text, OAuthCore, Provider, Shared};
use crate::domain::identity::{ProviderEmail, ProviderUser};
use crate::ports::external::{AuthorizeRequest, CodeExchange, ExternalProvider, ProviderError, ProviderSettings};

/// GitHub's OAuth app flow.
#[derive(Debug)]
pub struct GitHub {
    core: OAuthCore,
    api: String,
}

/// The API base: `api.github.com`, an override that already names it, or Enterprise's
/// `<URL>/api/v3`.
#[must_use]
pub fn api_base(override_url: &str) -> String {
    let base = base_url(override_url, "https://api.github.com");
    if override_url.is_empty() || base.ends_with("api.github.com") {
        base
    } else {
        format!("{base}/api/v3")
    }
}

impl Provider for GitHub {
    const NAME: &'static str = "github";

    fn build(s: &ProviderSettings, shared: &Shared) -> Result<Self, ProviderError> {
        let auth = base_url(&s.url, "https://github.com");
        let core = OAuthCore::new(
            s,
            &format!("{auth}/login/oauth/authorize"),
            &format!("{auth}/login/oauth/access_token"),
            &["user:email"],
            true,
            shared,
        )?;
        Ok(Self { core, api: api_base(&s.url) })
    }
}

#[derive(Deserialize)]
struct Email {
    #[serde(default)]
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

#[async_trait]
impl ExternalProvider for GitHub {
    async fn authorize_url(&self, request: &AuthorizeRequest) -> Result<String, ProviderError> {
        Ok(self.core.authorize_url(request))
    }

    async fn user(&self, exchange: &CodeExchange) -> Result<ProviderUser, ProviderError> {
        let token = self.core.exchange(exchange).await?;
        let profile: Value = self.core.get_json(&format!("{}/user", self.api), &token).await?;
        let emails: Vec<Email> = self.core.get_json(&format!("{}/user/emails", self.api), &token).await?;
        let emails: Vec<ProviderEmail> = emails
            .into_iter()
            .filter(|e| !e.email.is_empty())
            .map(|e| ProviderEmail { address: e.email, verified: e.verified, primary: e.primary })
            .collect();
        if emails.is_empty() {
            return Err(ProviderError::UserData("Unable to find email with GitHub provider".into()));
        }
        Ok(ProviderUser {
            id: require_id(id_text(&profile, "id"), "GitHub")?,
            emails,
            metadata: name_and_avatar(text(&profile, "name"), text(&profile, "avatar_url")),
            profile: profile.as_object().cloned().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::api_base;

    #[test]
    fn enterprise_api_lives_under_api_v3() {
        assert_eq!(api_base(""), "https://api.github.com");
        assert_eq!(api_base("https://api.github.com/"), "https://api.github.com");
        assert_eq!(api_base("https://github.example.com/"), "https://github.example.com/api/v3");
        assert_eq!(api_base("http://127.0.0.1:4000"), "http://127.0.0.1:4000/api/v3");
    }
}
