//! What the Connect simulator holds: organizations' access tokens and email assets, and the
//! create and update rules (names unique per organization, generated forwarding address and
//! callback URL, the write-only client secret, when Connect's tokens reset).

use std::collections::HashMap;

use jiff::Timestamp;

use crate::random;

/// Whether Connect holds OAuth tokens for the asset ("Generate Token" has been done).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    NotGenerated,
    Generated,
}

/// SMTP settings of an email asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSmtpConfig {
    pub server: String,
    pub port: u16,
    /// `STARTTLS`, `SSL` or `NONE`.
    pub security: String,
    pub username: String,
}

/// OAuth 2.0 client settings of an email asset. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SimOAuthConfig {
    pub client_id: String,
    /// The last secret pushed; for test assertions only (the API never returns it).
    pub client_secret: String,
    pub authorization_url: String,
    pub token_url: String,
    pub scope: String,
}

impl std::fmt::Debug for SimOAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOAuthConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("authorization_url", &self.authorization_url)
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .finish()
    }
}

/// An email asset as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAsset {
    pub asset_id: String,
    pub org_id: String,
    pub asset_name: String,
    /// The mailbox ("Email ID").
    pub email_id: String,
    pub register_to_webex_engage: bool,
    /// Always `OAUTH2` (the only type the simulator accepts).
    pub auth_type: String,
    pub smtp: SimSmtpConfig,
    pub oauth: SimOAuthConfig,
    /// `<32 hex>@mail-<region>.imiconnect.io`, generated at creation.
    pub forwarding_address: String,
    /// `https://<tenant host>.<region>.webexconnect.io/callback`.
    pub callback_url: String,
    pub token_status: TokenStatus,
    /// When a PUT last changed the client secret.
    pub secret_updated_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub(super) struct IssuedToken {
    pub org_id: String,
    pub expired: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub tokens: HashMap<String, IssuedToken>,
    /// The list operation answers 404 (it is not documented; a real Connect may lack it).
    pub list_unavailable: bool,
    pub assets: Vec<SimAsset>,
    pub pushed_secrets: Vec<String>,
}

/// The writable part of an asset, validated.
pub(super) struct AssetSpec {
    pub asset_name: String,
    pub email_id: String,
    pub register_to_webex_engage: bool,
    pub auth_type: String,
    pub smtp: SimSmtpConfig,
    pub oauth: OAuthSpec,
}

pub(super) struct OAuthSpec {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub authorization_url: String,
    pub token_url: String,
    pub scope: String,
}

/// Another asset of the organization has this name.
#[derive(Debug)]
pub(super) struct NameTaken(pub String);

impl State {
    fn name_taken(&self, org_id: &str, name: &str, except: Option<&str>) -> bool {
        self.assets.iter().any(|a| {
            a.org_id == org_id && a.asset_name.eq_ignore_ascii_case(name) && Some(a.asset_id.as_str()) != except
        })
    }

    /// The organization's asset `asset_id`, by position.
    pub fn asset_index(&self, org_id: &str, asset_id: &str) -> Option<usize> {
        self.assets.iter().position(|a| a.asset_id == asset_id && a.org_id == org_id)
    }

    /// Creates an asset; its forwarding address and callback URL name `region` and `tenant_host`.
    pub fn create(
        &mut self,
        org_id: &str,
        spec: AssetSpec,
        region: &str,
        tenant_host: &str,
        now: Timestamp,
    ) -> Result<&SimAsset, NameTaken> {
        if self.name_taken(org_id, &spec.asset_name, None) {
            return Err(NameTaken(spec.asset_name));
        }
        let secret = spec.oauth.client_secret.clone().unwrap_or_default();
        let asset = SimAsset {
            asset_id: random::guid(),
            org_id: org_id.to_string(),
            asset_name: spec.asset_name,
            email_id: spec.email_id,
            register_to_webex_engage: spec.register_to_webex_engage,
            auth_type: spec.auth_type,
            smtp: spec.smtp,
            oauth: SimOAuthConfig {
                client_id: spec.oauth.client_id,
                client_secret: secret.clone(),
                authorization_url: spec.oauth.authorization_url,
                token_url: spec.oauth.token_url,
                scope: spec.oauth.scope,
            },
            // 32 lowercase hex characters, as seen on public screenshots.
            forwarding_address: format!("{}@mail-{region}.imiconnect.io", random::string_from(b"0123456789abcdef", 32)),
            callback_url: format!("https://{tenant_host}.{region}.webexconnect.io/callback"),
            token_status: TokenStatus::NotGenerated,
            secret_updated_at: None,
            created_at: now,
            updated_at: now,
        };
        self.pushed_secrets.push(secret);
        self.assets.push(asset);
        Ok(self.assets.last().expect("just added"))
    }

    /// PUT replaces every writable field of the asset at `index`; a request without a client
    /// secret keeps the current one (GET never returns it, so a read-modify-write client cannot
    /// send it back). Provisional: changing the OAuth client (ID, URLs, scope) invalidates
    /// Connect's tokens; changing only the secret keeps them and records `secretUpdatedAt`.
    pub fn update(
        &mut self,
        index: usize,
        org_id: &str,
        spec: AssetSpec,
        now: Timestamp,
    ) -> Result<&SimAsset, NameTaken> {
        let asset_id = self.assets[index].asset_id.clone();
        if self.name_taken(org_id, &spec.asset_name, Some(&asset_id)) {
            return Err(NameTaken(spec.asset_name));
        }
        if let Some(secret) = &spec.oauth.client_secret {
            self.pushed_secrets.push(secret.clone());
        }
        let asset = &mut self.assets[index];
        let client_changed = asset.oauth.client_id != spec.oauth.client_id
            || asset.oauth.authorization_url != spec.oauth.authorization_url
            || asset.oauth.token_url != spec.oauth.token_url
            || asset.oauth.scope != spec.oauth.scope;
        if client_changed {
            asset.token_status = TokenStatus::NotGenerated;
        }
        if let Some(secret) = spec.oauth.client_secret
            && secret != asset.oauth.client_secret
        {
            asset.oauth.client_secret = secret;
            asset.secret_updated_at = Some(now);
        }
        asset.asset_name = spec.asset_name;
        asset.email_id = spec.email_id;
        asset.register_to_webex_engage = spec.register_to_webex_engage;
        asset.auth_type = spec.auth_type;
        asset.smtp = spec.smtp;
        asset.oauth.client_id = spec.oauth.client_id;
        asset.oauth.authorization_url = spec.oauth.authorization_url;
        asset.oauth.token_url = spec.oauth.token_url;
        asset.oauth.scope = spec.oauth.scope;
        asset.updated_at = now;
        Ok(asset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_client_secret() {
        let oauth = SimOAuthConfig {
            client_id: "c".into(),
            client_secret: "very-secret".into(),
            authorization_url: "https://a".into(),
            token_url: "https://t".into(),
            scope: "s".into(),
        };
        assert!(!format!("{oauth:?}").contains("very-secret"));
    }
}
