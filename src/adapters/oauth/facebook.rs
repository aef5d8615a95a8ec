//! Facebook Login (EXTERNAL.md 2.6). An override of the base URL replaces both the dialog
//! host (`www.facebook.com`) and the Graph API host (`graph.facebook.com`).

use async_trait::async_trait;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::{base_url, id_text, require_id, text, OAuthCore, Provider, Shared};
use crate::domain::identity::{ProviderEmail, ProviderUser};
use crate::ports::external::{AuthorizeRequest, CodeExchange, ExternalProvider, ProviderError, ProviderSettings};

/// Facebook's manual login flow.
#[derive(Debug)]
pub struct Facebook {
    core: OAuthCore,
    graph: String,
    secret: SecretString,
}

impl Provider for Facebook {
    const NAME: &'static str = "facebook";

    fn build(s: &ProviderSettings, shared: &Shared) -> Result<Self, ProviderError> {
        let auth = base_url(&s.url, "https://www.facebook.com");
        let graph = base_url(&s.url, "https://graph.facebook.com");
        let core = OAuthCore::new(s, &format!("{auth}/dialog/oauth"), &format!("{graph}/oauth/access_token"), &["email"], true, shared)?;
        Ok(Self { core, graph, secret: s.secret.clone() })
    }
}

/// `appsecret_proof`: hex HMAC-SHA256 of the access token keyed with the app secret, which
/// Graph API calls can be required to carry.
#[must_use]
pub fn appsecret_proof(secret: &SecretString, access_token: &SecretString) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return String::new();
    };
    mac.update(access_token.expose_secret().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[async_trait]
impl ExternalProvider for Facebook {
    async fn authorize_url(&self, request: &AuthorizeRequest) -> Result<String, ProviderError> {
        Ok(self.core.authorize_url(request))
    }

    async fn user(&self, exchange: &CodeExchange) -> Result<ProviderUser, ProviderError> {
        let token = self.core.exchange(exchange).await?;
        let url = format!(
            "{}/me?fields=email,first_name,last_name,name,picture&appsecret_proof={}",
            self.graph,
            appsecret_proof(&self.secret, &token)
        );
        let profile: Value = self.core.get_json(&url, &token).await?;
        let email = text(&profile, "email");
        if email.is_empty() {
            return Err(ProviderError::UserData("Unable to find email with Facebook provider".into()));
        }
        let full_name = format!("{} {}", text(&profile, "first_name"), text(&profile, "last_name")).trim().to_owned();
        let avatar = profile.pointer("/picture/data/url").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut metadata = Map::new();
        metadata.insert("full_name".into(), Value::String(full_name));
        metadata.insert("avatar_url".into(), Value::String(avatar));
        metadata.insert("slug".into(), Value::String(text(&profile, "name")));
        Ok(ProviderUser {
            id: require_id(id_text(&profile, "id"), "Facebook")?,
            // Facebook only reports addresses its user confirmed.
            emails: vec![ProviderEmail { address: email, verified: true, primary: true }],
            metadata,
            profile: profile.as_object().cloned().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appsecret_proof_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        let proof = appsecret_proof(&SecretString::from("Jefe"), &SecretString::from("what do ya want for nothing?"));
        assert_eq!(proof, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
