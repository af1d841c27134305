//! Types shared by both resources: clouds, permissions, client-secret policy, references.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Microsoft cloud the tenant lives in; it selects the login and Graph endpoints.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Cloud {
    #[default]
    AzurePublic,
    AzureUSGovernment,
    AzureChina,
}

/// One API the application needs permissions on, with permissions named as in the Azure portal.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "size(self.application) + size(self.delegated) > 0",
     "message": "each permissions entry needs at least one name in application or delegated"}
]))]
pub struct Permission {
    /// The API (resource service principal) by display name, e.g. `Office 365 Exchange Online` or
    /// `Microsoft Graph`, or by its appId GUID. Resolved against the tenant at reconcile time.
    #[schemars(length(min = 1, max = 256))]
    pub resource: String,
    /// Application permissions (app roles) by value, e.g. `Mail.Send`. Granted with admin consent
    /// as app role assignments. An application permission lets the app act as any mailbox.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    pub application: Vec<String>,
    /// Delegated permissions (OAuth2 scopes) by value, e.g. `SMTP.Send`, `offline_access`.
    /// Admin consent grants them for all users (consentType AllPrincipals).
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    pub delegated: Vec<String>,
}

/// How the client secret is issued, stored and rotated (the model is cert-manager's Certificate).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.renewBefore) && has(self.renewBeforePercentage))",
     "message": "set only one of clientSecret.renewBefore and clientSecret.renewBeforePercentage"},
    {"rule": "!self.duration.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms))+$') || (duration(self.duration) >= duration('1h') && duration(self.duration) <= duration('17520h'))",
     "message": "clientSecret.duration must be between 1h and 17520h (2 years); Microsoft recommends less than 8760h (12 months)"},
    {"rule": "!has(self.renewBefore) || !self.renewBefore.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms))+$') || !self.duration.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms))+$') || duration(self.renewBefore) < duration(self.duration)",
     "message": "clientSecret.renewBefore must be shorter than clientSecret.duration, otherwise the secret would be renewed as soon as it is issued"}
]))]
pub struct ClientSecretSpec {
    /// Name of the Kubernetes Secret (same namespace) that receives `client-id`, `client-secret`,
    /// `tenant-id`, `authority` and `token-url`. Immutable.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
         "message": "clientSecret.secretName must be a lowercase DNS subdomain name (a-z, 0-9, '-', '.')"},
        {"rule": "self == oldSelf",
         "message": "clientSecret.secretName is immutable: create a new resource to write another Secret"}
    ]))]
    pub secret_name: String,
    /// Description of the secret in Entra ID (the password credential's display name prefix).
    #[serde(default = "default_secret_description")]
    #[schemars(length(min = 1, max = 64))]
    pub description: String,
    /// Lifetime of each issued secret, a duration such as `4320h` (180 days). Between 1h and
    /// 17520h (2 years); shortened to the tenant's app management policy when that is lower.
    #[serde(default = "default_secret_duration")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms))+$')",
         "message": "clientSecret.duration must be a duration such as 4320h, 90m or 1h30m"}
    ]))]
    pub duration: String,
    /// Renew this long before the secret expires, e.g. `720h`. Default: at two thirds of the
    /// lifetime (as cert-manager). Mutually exclusive with renewBeforePercentage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms))+$')",
         "message": "clientSecret.renewBefore must be a duration such as 720h, 90m or 1h30m"}
    ]))]
    pub renew_before: Option<String>,
    /// Renew when this percentage of the lifetime remains (1-99). Mutually exclusive with renewBefore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 99))]
    pub renew_before_percentage: Option<i32>,
    /// How long the previous secret stays valid after a verified rotation before it is revoked
    /// (grace period for consumers still holding it), e.g. `1h`. `0s` revokes at once.
    #[serde(default = "default_revoke_after")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms))+$')",
         "message": "clientSecret.revokeAfter must be a duration of zero or more such as 0s, 30m or 24h"}
    ]))]
    pub revoke_after: String,
    /// When true, the previous secret is revoked only once the annotation
    /// `connectemail.dev/secret-acknowledged` on this resource names the new key ID, i.e. a consumer
    /// confirmed it uses the new secret. EmailChannels using the registration always acknowledge,
    /// each for itself (annotation `ack.connectemail.dev/<channel>`), whatever this field says:
    /// the previous secret stays until every one of them names the new key ID.
    #[serde(default)]
    pub require_acknowledgement: bool,
    /// Extra labels and annotations for the generated Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,
}

impl ClientSecretSpec {
    /// A spec with every default filled in, writing to `secret_name`.
    pub fn with_secret_name(secret_name: impl Into<String>) -> Self {
        Self {
            secret_name: secret_name.into(),
            description: default_secret_description(),
            duration: default_secret_duration(),
            renew_before: None,
            renew_before_percentage: None,
            revoke_after: default_revoke_after(),
            require_acknowledgement: false,
            secret_template: None,
        }
    }
}

fn default_secret_description() -> String {
    "connect-email-operator".into()
}
fn default_secret_duration() -> String {
    "4320h".into()
}
fn default_revoke_after() -> String {
    "1h".into()
}

/// Metadata copied onto the generated Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_token_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_token_key() -> String {
    "token".into()
}
