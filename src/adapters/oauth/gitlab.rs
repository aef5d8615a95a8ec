//! GitLab.com, or a self-managed GitLab through `GOTRUE_EXTERNAL_GITLAB_URL`
//! (EXTERNAL.md 2.4).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::{base_url, id_text, name_and_avatar, require_id, text, OAuthCore, Provider, Shared};
use crate::domain::identity::{ProviderEmail, ProviderUser};
use crate::ports::external::{AuthorizeRequest, CodeExchange, ExternalProvider, ProviderError, ProviderSettings};

/// GitLab's OAuth application flow.
#[derive(Debug)]
pub struct GitLab {
    core: OAuthCore,
    host: String,
}

impl Provider for GitLab {
    const NAME: &'static str = "gitlab";

    fn build(s: &ProviderSettings, shared: &Shared) -> Result<Self, ProviderError> {
        let host = base_url(&s.url, "https://gitlab.com");
        let core = OAuthCore::new(s, &format!("{host}/oauth/authorize"), &format!("{host}/oauth/token"), &["read_user"], true, shared)?;
        Ok(Self { core, host })
    }
}

#[derive(Deserialize)]
struct Email {
    #[serde(default)]
    email: String,
    /// Reported by GitLab 13.x and later; upstream ignored it and took every secondary
    /// address as unverified.
    #[serde(default)]
    confirmed_at: Option<String>,
}

#[async_trait]
impl ExternalProvider for GitLab {
    async fn authorize_url(&self, request: &AuthorizeRequest) -> Result<String, ProviderError> {
        Ok(self.core.authorize_url(request))
    }

    async fn user(&self, exchange: &CodeExchange) -> Result<ProviderUser, ProviderError> {
        let token = self.core.exchange(exchange).await?;
        let profile: Value = self.core.get_json(&format!("{}/api/v4/user", self.host), &token).await?;
        let listed: Vec<Email> = self.core.get_json(&format!("{}/api/v4/user/emails", self.host), &token).await?;
        let confirmed = |c: &Option<String>| c.as_deref().is_some_and(|s| !s.is_empty());
        // Secondary addresses first, then the profile's own, primary, as upstream orders them.
        let mut emails: Vec<ProviderEmail> = listed
            .into_iter()
            .filter(|e| !e.email.is_empty())
            .map(|e| ProviderEmail { verified: confirmed(&e.confirmed_at), address: e.email, primary: false })
            .collect();
        let main = text(&profile, "email");
        if !main.is_empty() {
            let verified = confirmed(&profile.get("confirmed_at").and_then(Value::as_str).map(str::to_owned));
            emails.push(ProviderEmail { address: main, verified, primary: true });
        }
        if emails.is_empty() {
            return Err(ProviderError::UserData("Unable to find email with GitLab provider".into()));
        }
        Ok(ProviderUser {
            id: require_id(id_text(&profile, "id"), "GitLab")?,
            emails,
            metadata: name_and_avatar(text(&profile, "name"), text(&profile, "avatar_url")),
            profile: profile.as_object().cloned().unwrap_or_default(),
        })
    }
}
