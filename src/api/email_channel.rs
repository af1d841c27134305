//! `EmailChannel`: the whole "Webex Connect Email app with Office 365 OAuth" procedure for one
//! mailbox. It owns a child `AzureAppRegistration` (or uses an existing one) whose redirect URI is
//! the Connect callback URL, configures the Exchange Online mailbox and keeps the Connect asset in sync.
// kube-derive's repeated `printcolumn(...)` attributes trip this lint; they are distinct columns.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ClientSecretSpec, LocalObjectReference, Permission, SecretKeyReference};
use super::tenant::TenantReference;

/// Desired state of one Webex Connect email channel backed by an Office 365 mailbox.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "connectemail.dev",
    version = "v1alpha1",
    kind = "EmailChannel",
    namespaced,
    status = "EmailChannelStatus",
    shortname = "emailch",
    category = "connectemail",
    doc = "A Webex Connect email channel using Office 365 OAuth: Entra ID app and rotated secret, Exchange Online mailbox settings and the Connect email asset.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Mailbox", type_ = "string", json_path = ".spec.mailbox"),
    printcolumn(name = "Admitted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Admitted\")].status"),
    printcolumn(name = "App ID", type_ = "string", json_path = ".status.appId"),
    printcolumn(name = "Secret Expiry", type_ = "string", json_path = ".status.secretNotAfter"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct EmailChannelSpec {
    /// The mailbox (Email ID in Connect, the user principal name in Microsoft 365) that sends and
    /// receives the channel's mail, e.g. `support@contoso.com`.
    #[schemars(length(min = 3, max = 254))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[^@ ]+@[^@ ]+[.][^@ ]+$')",
         "message": "mailbox must be an email address such as support@contoso.com"},
        {"rule": "self == oldSelf",
         "message": "mailbox is immutable (the operator restores the earlier mailbox's settings only when the channel is deleted): create a new EmailChannel for another mailbox"}
    ]))]
    pub mailbox: String,
    /// The Entra ID side: a tenant to create a child AzureAppRegistration in, or a reference to
    /// an existing AzureAppRegistration in this namespace.
    pub azure: AzureSettings,
    /// Exchange Online mailbox settings (SMTP AUTH and forwarding to Connect).
    #[serde(default)]
    pub exchange: ExchangeSettings,
    /// Webex Connect email asset.
    pub connect: ConnectSettings,
    /// SMTP settings entered in the Connect asset; Office 365 defaults.
    #[serde(default)]
    pub smtp: SmtpSettings,
}

/// Which Entra ID application the channel uses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.tenantRef) != has(self.appRegistrationRef)",
     "message": "set exactly one of azure.tenantRef (the operator creates the app registration in that EntraTenant) and azure.appRegistrationRef (use an existing AzureAppRegistration)"},
    {"rule": "!has(self.appRegistrationRef) || !(has(self.displayName) || has(self.permissions) || has(self.clientSecret))",
     "message": "azure.displayName, permissions and clientSecret apply to the child app registration only; with azure.appRegistrationRef set them on the referenced AzureAppRegistration"},
    {"rule": "!has(oldSelf.tenantRef) || (has(self.tenantRef) && self.tenantRef == oldSelf.tenantRef)",
     "message": "azure.tenantRef is immutable: create a new EmailChannel for another tenant"}
]))]
pub struct AzureSettings {
    /// The EntraTenant (set up by the cluster administrator) to create the child
    /// AzureAppRegistration in. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_ref: Option<TenantReference>,
    /// Use this existing AzureAppRegistration (same namespace) instead of creating one; it must
    /// list the Connect callback URL among its redirectUris.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_registration_ref: Option<LocalObjectReference>,
    /// Display name of the child application (default: `Webex Connect <mailbox>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 120))]
    pub display_name: Option<String>,
    /// Permissions of the child application. Default: delegated `SMTP.Send` on Office 365 Exchange
    /// Online and `offline_access` on Microsoft Graph, admin-consented, which is what Connect's
    /// token flow uses. See deploy/examples for the TAC guide's application `Mail.Send`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub permissions: Option<Vec<Permission>>,
    /// Client secret policy of the child application (default: Secret `<channel>-azure`, 4320h
    /// lifetime, renewed at two thirds, previous secret revoked 1h after Connect holds the new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecretSpec>,
}

/// Exchange Online mailbox settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeSettings {
    /// Configure the mailbox through Exchange Online (needs the operator's Exchange.ManageAsApp
    /// role). When false the operator only reports what it observes.
    #[serde(default = "default_true")]
    pub manage: bool,
    /// Enable authenticated SMTP (SMTP AUTH) for this mailbox, which Connect uses to send.
    #[serde(default = "default_true")]
    pub smtp_auth: bool,
    /// Forward incoming mail to the Connect forwarding address.
    #[serde(default)]
    pub forwarding: ForwardingSettings,
}

impl Default for ExchangeSettings {
    fn default() -> Self {
        Self { manage: true, smtp_auth: true, forwarding: ForwardingSettings::default() }
    }
}

/// Mailbox forwarding to Connect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingSettings {
    /// Forward all incoming mail to the Connect forwarding address.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Keep a copy of forwarded mail in the mailbox.
    #[serde(default = "default_true")]
    pub keep_copy: bool,
}

impl Default for ForwardingSettings {
    fn default() -> Self {
        Self { enabled: true, keep_copy: true }
    }
}

fn default_true() -> bool {
    true
}

/// The Webex Connect side.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode != 'Manual' || has(self.forwardingAddress)",
     "message": "connect.forwardingAddress is required in Manual mode: copy it from Webex Connect → Assets → Apps → your email app"},
    {"rule": "self.mode != 'Api' || (has(self.organizationId) && has(self.credentialsSecretRef))",
     "message": "connect.organizationId and connect.credentialsSecretRef are required in Api mode"}
]))]
pub struct ConnectSettings {
    /// Manual (default): the operator computes the values a person enters in the Connect email
    /// form and waits for the `connectemail.dev/connect-secret-applied` annotation after each
    /// rotation. Api (experimental, opt-in): the operator manages the asset through the Digital
    /// Asset API, whose field mapping is provisional until confirmed against a real tenant.
    #[serde(default)]
    pub mode: ConnectMode,
    /// Webex Connect region of the tenant: us, eu, uk, ca, au, sg or in (Japan uses au).
    pub region: ConnectRegion,
    /// Host name of the Connect tenant, e.g. `acme.us.webexconnect.io`; the callback URL is
    /// `https://<tenantHost>/callback`. At most 239 characters, so that the callback URL fits the
    /// 256 characters Entra ID allows for a redirect URI.
    #[schemars(length(min = 1, max = 239))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)+$')",
         "message": "connect.tenantHost must be a host name such as acme.us.webexconnect.io (no scheme, no path)"}
    ]))]
    pub tenant_host: String,
    /// Name of the email app (asset) in Connect.
    #[schemars(length(min = 1, max = 100))]
    pub asset_name: String,
    /// Manual mode: the forwarding address Connect shows for the app, `<hex>@mail-<region>.imiconnect.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[^@ ]+@[^@ ]+[.][^@ ]+$')",
         "message": "connect.forwardingAddress must be an email address such as 1a2b3c@mail-us.imiconnect.io"}
    ]))]
    pub forwarding_address: Option<String>,
    /// Api mode: the Webex organization ID (x-organization-id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub organization_id: Option<String>,
    /// Api mode: Secret key holding the Webex access token for the Digital Asset API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeyReference>,
}

/// How the Connect asset is managed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConnectMode {
    #[default]
    Manual,
    Api,
}

/// Webex Connect regions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectRegion {
    Us,
    Eu,
    Uk,
    Ca,
    Au,
    Sg,
    In,
}

impl ConnectRegion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
            Self::Uk => "uk",
            Self::Ca => "ca",
            Self::Au => "au",
            Self::Sg => "sg",
            Self::In => "in",
        }
    }
}

/// SMTP settings of the Connect asset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSettings {
    /// SMTP server host.
    #[serde(default = "default_smtp_server")]
    #[schemars(length(min = 1, max = 253))]
    pub server: String,
    /// SMTP port.
    #[serde(default = "default_smtp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Transport security: STARTTLS (default, port 587), SSL or None.
    #[serde(default)]
    pub security: SmtpSecurity,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self { server: default_smtp_server(), port: default_smtp_port(), security: SmtpSecurity::default() }
    }
}

fn default_smtp_server() -> String {
    "smtp.office365.com".into()
}
fn default_smtp_port() -> i32 {
    587
}

/// SMTP transport security.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SmtpSecurity {
    #[default]
    #[serde(rename = "STARTTLS")]
    StartTls,
    #[serde(rename = "SSL")]
    Ssl,
    None,
}

/// Observed state of the channel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailChannelStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Admitted, AppRegistrationReady, MailboxConfigured, OutboundForwardingAllowed,
    /// ConnectAssetSynced, ConnectAuthorized, ConnectSecretOutdated (Manual mode), Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Name of the AzureAppRegistration in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_registration: Option<String>,
    /// Application (client) ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Secret holding client-id / client-secret / tenant-id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Expiry of the current client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_not_after: Option<Time>,
    /// The Connect callback URL registered as redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// The Connect forwarding address the mailbox forwards to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding_address: Option<String>,
    /// The Connect asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectStatus>,
    /// The mailbox settings as they were before the operator first changed them (restored when
    /// the channel is deleted), and what the operator set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<MailboxStatus>,
}

/// The mailbox settings the operator found and the ones it set. Once the operator has changed a
/// setting it owns it: drift is repaired; on deletion the earlier value is restored, unless
/// someone changed the setting again since (their value is then kept).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxStatus {
    /// The mailbox these values belong to (in the tenant of the channel's registration).
    pub address: String,
    /// The tenant the mailbox lives in.
    pub tenant_id: String,
    /// The tenant's cloud.
    #[serde(default)]
    pub cloud: super::common::Cloud,
    /// Forwarding before the operator changed it; unset while the operator has not changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_forwarding: Option<ForwardingValue>,
    /// Forwarding the operator set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_forwarding: Option<ForwardingValue>,
    /// `SmtpClientAuthenticationDisabled` before the operator changed it (`inherit` = unset);
    /// unset while the operator has not changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_smtp_auth_disabled: Option<SmtpAuthValue>,
    /// `SmtpClientAuthenticationDisabled` the operator set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_smtp_auth_disabled: Option<SmtpAuthValue>,
}

/// A mailbox's forwarding (`ForwardingSmtpAddress`, `DeliverToMailboxAndForward`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingValue {
    /// The SMTP address mail is forwarded to; unset: no forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_address: Option<String>,
    /// A recipient inside the organisation (`ForwardingAddress`) that mail was forwarded to; the
    /// operator cannot restore it (it restores the SMTP forwarding and reports this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_address: Option<String>,
    /// Keep a copy in the mailbox.
    #[serde(default)]
    pub keep_copy: bool,
}

/// A mailbox's `SmtpClientAuthenticationDisabled`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SmtpAuthValue {
    /// Unset: the organisation's setting applies.
    #[serde(rename = "inherit")]
    Inherit,
    /// SMTP AUTH disabled for the mailbox.
    #[serde(rename = "disabled")]
    Disabled,
    /// SMTP AUTH enabled for the mailbox.
    #[serde(rename = "enabled")]
    Enabled,
}

impl SmtpAuthValue {
    /// As `SmtpClientAuthenticationDisabled` (None = inherit).
    pub fn as_disabled(self) -> Option<bool> {
        match self {
            Self::Inherit => None,
            Self::Disabled => Some(true),
            Self::Enabled => Some(false),
        }
    }

    pub fn from_disabled(disabled: Option<bool>) -> Self {
        match disabled {
            None => Self::Inherit,
            Some(true) => Self::Disabled,
            Some(false) => Self::Enabled,
        }
    }
}

/// Observed state of the Connect asset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectStatus {
    /// Asset ID (Api mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<String>,
    /// keyId of the client secret Connect holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_key_id: Option<String>,
    /// Manual mode: the Connect form's Access Token URL and Refresh Token URL (the same: the
    /// tenant's token endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Manual mode: the Connect form's Scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Where a person signs in once ("Generate Token") when Connect has no refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// Api mode: the asset name the operator was about to create, recorded before the create call
    /// and cleared once the asset ID is recorded. An asset of this name found without a recorded
    /// ID is the one this channel created (the ID was lost, e.g. by a crash); any other asset
    /// found by name is not taken over unless a person sets `assetId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating_asset_name: Option<String>,
}
