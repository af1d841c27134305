//! Webex Connect: the values of the email asset form (Manual mode) and the Digital Asset API
//! (Api mode). The API's public schema is incomplete; its field mapping lives in one module.

pub mod api;

use serde::Serialize;

use crate::api::Cloud;
use crate::api::email_channel::{ConnectSettings, EmailChannelSpec, SmtpSecurity};
use crate::azure::Endpoints;

/// Connect's OAuth callback for a tenant host: the redirect URI registered on the Entra app.
pub fn callback_url(tenant_host: &str) -> String {
    format!("https://{tenant_host}/callback")
}

/// The scope Connect requests in the authorization-code flow ("Generate Token").
pub fn scope(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::AzurePublic => "offline_access https://outlook.office.com/SMTP.Send",
        Cloud::AzureUSGovernment => "offline_access https://outlook.office365.us/SMTP.Send",
        Cloud::AzureChina => "offline_access https://partner.outlook.cn/SMTP.Send",
    }
}

/// Every value a person enters in Connect → Assets → Apps → Configure New App → Email (OAuth 2.0),
/// or that the Api mode pushes, in the form's order. The client secret itself is never part of
/// it: it is named by where to read it (the Secret and key).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AssetForm {
    pub asset_name: String,
    pub email_id: String,
    pub authentication_type: &'static str,
    pub smtp_server: String,
    pub smtp_username: String,
    pub smtp_port: i32,
    pub smtp_security: &'static str,
    pub client_id: String,
    /// `Secret <name>, key client-secret`: where the client secret value is.
    pub client_secret_from: String,
    pub authorization_url: String,
    pub scope: &'static str,
    /// The tenant's `/oauth2/v2.0/token`.
    pub access_token_url: String,
    /// The same token endpoint: Connect refreshes there.
    pub refresh_token_url: String,
    pub callback_url: String,
}

impl AssetForm {
    /// (label, value) in the order the Connect email form shows its fields (public lab guides:
    /// Asset Name, Email ID, Authentication Type, SMTP Server, Username, Port, Security, Client
    /// ID, Client Secret, Authorization URL, Scope, Access Token URL, Refresh Token URL), then the
    /// callback URL Connect displays for the app registration.
    pub fn fields(&self) -> [(&'static str, String); 14] {
        [
            ("Asset Name", self.asset_name.clone()),
            ("Email ID", self.email_id.clone()),
            ("Authentication Type", self.authentication_type.to_string()),
            ("SMTP Server", self.smtp_server.clone()),
            ("Username", self.smtp_username.clone()),
            ("Port", self.smtp_port.to_string()),
            ("Security", self.smtp_security.to_string()),
            ("Client ID", self.client_id.clone()),
            ("Client Secret", self.client_secret_from.clone()),
            ("Authorization URL", self.authorization_url.clone()),
            ("Scope", self.scope.to_string()),
            ("Access Token URL", self.access_token_url.clone()),
            ("Refresh Token URL", self.refresh_token_url.clone()),
            ("Callback URL", self.callback_url.clone()),
        ]
    }
}

pub fn security_label(s: SmtpSecurity) -> &'static str {
    match s {
        SmtpSecurity::StartTls => "STARTTLS",
        SmtpSecurity::Ssl => "SSL",
        SmtpSecurity::None => "None",
    }
}

/// The form for a channel whose app registration has `client_id` in `tenant`.
pub fn asset_form(
    spec: &EmailChannelSpec,
    cloud: Cloud,
    endpoints: &Endpoints,
    tenant: &str,
    client_id: &str,
    secret_name: &str,
) -> AssetForm {
    let connect: &ConnectSettings = &spec.connect;
    AssetForm {
        asset_name: connect.asset_name.clone(),
        email_id: spec.mailbox.clone(),
        authentication_type: "OAuth 2.0",
        smtp_server: spec.smtp.server.clone(),
        smtp_username: spec.mailbox.clone(),
        smtp_port: spec.smtp.port,
        smtp_security: security_label(spec.smtp.security),
        client_id: client_id.into(),
        client_secret_from: format!("Secret {secret_name}, key client-secret"),
        authorization_url: endpoints.authorize_url(tenant),
        scope: scope(cloud),
        access_token_url: endpoints.token_url(tenant),
        refresh_token_url: endpoints.token_url(tenant),
        callback_url: callback_url(&connect.tenant_host),
    }
}
