//! Bitbucket Cloud (EXTERNAL.md 2.2). An override of the base URL replaces both the site
//! (`bitbucket.org`) and the API host (`api.bitbucket.org`).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::{base_url, name_and_avatar, require_id, text, OAuthCore, Provider, Shared};
use crate::domain::identity::{ProviderEmail, ProviderUser};
use crate::ports::external::{AuthorizeRequest, CodeExchange, ExternalProvider, ProviderError, ProviderSettings};

/// Bitbucket's OAuth consumer flow.
#[derive(Debug)]
pub struct Bitbucket {
    core: OAuthCore,
    api: String,
}

impl Provider for Bitbucket {
    const NAME: &'static str = "bitbucket";

    fn build(s: &ProviderSettings, shared: &Shared) -> Result<Self, ProviderError> {
        let auth = base_url(&s.url, "https://bitbucket.org");
        let api = base_url(&s.url, "https://api.bitbucket.org");
        // Bitbucket Cloud documents no PKCE support, so none is sent.
        let core = OAuthCore::new(
            s,
            &format!("{auth}/site/oauth2/authorize"),
            &format!("{auth}/site/oauth2/access_token"),
            &["account", "email"],
            false,
            shared,
        )?;
        Ok(Self { core, api: format!("{api}/2.0") })
    }
}

#[derive(Deserialize)]
struct Emails {
    #[serde(default)]
    values: Vec<Email>,
}

#[derive(Deserialize)]
struct Email {
    #[serde(default)]
    email: String,
    #[serde(default)]
    is_primary: bool,
    #[serde(default)]
    is_confirmed: bool,
}

#[async_trait]
impl ExternalProvider for Bitbucket {
    async fn authorize_url(&self, request: &AuthorizeRequest) -> Result<String, ProviderError> {
        Ok(self.core.authorize_url(request))
    }

    async fn user(&self, exchange: &CodeExchange) -> Result<ProviderUser, ProviderError> {
        let token = self.core.exchange(exchange).await?;
        let profile: Value = self.core.get_json(&format!("{}/user", self.api), &token).await?;
        let listed: Emails = self.core.get_json(&format!("{}/user/emails", self.api), &token).await?;
        let emails: Vec<ProviderEmail> = listed
            .values
            .into_iter()
            .filter(|e| !e.email.is_empty())
            .map(|e| ProviderEmail { address: e.email, verified: e.is_confirmed, primary: e.is_primary })
            .collect();
        if emails.is_empty() {
            return Err(ProviderError::UserData("Unable to find email with Bitbucket provider".into()));
        }
        let avatar = profile.get("avatar").map(|a| text(a, "href")).unwrap_or_default();
        // `uuid` is the account's stable id (`account_id` is the Atlassian-wide one).
        let id = Some(text(&profile, "uuid")).filter(|s| !s.is_empty()).unwrap_or_else(|| text(&profile, "account_id"));
        Ok(ProviderUser {
            id: require_id(id, "Bitbucket")?,
            emails,
            metadata: name_and_avatar(text(&profile, "display_name"), avatar),
            profile: profile.as_object().cloned().unwrap_or_default(),
        })
    }
}
