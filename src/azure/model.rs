//! Microsoft Graph v1.0 resources, limited to the fields the operator reads or writes.

use jiff::Timestamp;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: String,
    pub app_id: String,
    #[serde(default)]
    pub unique_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub sign_in_audience: Option<String>,
    #[serde(default)]
    pub web: Option<Web>,
    #[serde(default)]
    pub required_resource_access: Vec<RequiredResourceAccess>,
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    /// Tags; `connectemail.dev/adopt:<namespace>/<name>` lets that resource adopt the application.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The operator's owner stamp (`Managed by connect-email-operator from <namespace>/<name>`).
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Web {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub implicit_grant_settings: ImplicitGrantSettings,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImplicitGrantSettings {
    #[serde(default)]
    pub enable_access_token_issuance: bool,
    #[serde(default)]
    pub enable_id_token_issuance: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct RequiredResourceAccess {
    pub resource_app_id: String,
    pub resource_access: Vec<ResourceAccess>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResourceAccess {
    pub id: String,
    /// `Role` (application permission) or `Scope` (delegated permission).
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    pub key_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub start_date_time: Option<Timestamp>,
    #[serde(default)]
    pub end_date_time: Option<Timestamp>,
}

/// The body the operator PATCHes: every collection in full, since Graph replaces collections.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    pub display_name: String,
    pub sign_in_audience: String,
    pub web: Web,
    pub required_resource_access: Vec<RequiredResourceAccess>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A freshly added password: the only time Graph returns its text.
pub struct NewPassword {
    pub key_id: String,
    pub secret_text: SecretString,
    pub hint: Option<String>,
    pub display_name: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPassword").field("key_id", &self.key_id).field("end", &self.end).finish_non_exhaustive()
    }
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: String,
    /// The tenant that owns the application (Microsoft's own for first-party APIs).
    #[serde(default)]
    pub app_owner_organization_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub app_roles: Vec<AppRole>,
    #[serde(default)]
    pub oauth2_permission_scopes: Vec<PermissionScope>,
    /// "Assignment required?": only users (or groups) assigned to the application can sign in.
    #[serde(default)]
    pub app_role_assignment_required: bool,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    pub id: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default = "enabled")]
    pub is_enabled: bool,
    #[serde(default)]
    pub allowed_member_types: Vec<String>,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PermissionScope {
    pub id: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default = "enabled")]
    pub is_enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    pub id: String,
    pub principal_id: String,
    pub resource_id: String,
    pub app_role_id: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2PermissionGrant {
    pub id: String,
    pub client_id: String,
    pub resource_id: String,
    #[serde(default)]
    pub consent_type: Option<String>,
    /// The user a `Principal` grant is for.
    #[serde(default)]
    pub principal_id: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl OAuth2PermissionGrant {
    /// The granted scopes as a set of names.
    pub fn scopes(&self) -> std::collections::BTreeSet<String> {
        self.scope.as_deref().unwrap_or_default().split_whitespace().map(str::to_string).collect()
    }
}

/// A collection the operator follows with delta query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeFeed {
    Applications,
    ServicePrincipals,
    DelegatedGrants,
}

/// An object reported by a delta query (only the properties the operator selects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedObject {
    pub id: String,
    pub app_id: Option<String>,
    /// For delegated grants: the client service principal's object ID.
    pub client_id: Option<String>,
    /// Deleted (or moved to deleted items).
    pub removed: bool,
}

/// One delta round: what changed, and the link for the next round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    pub changed: Vec<ChangedObject>,
    pub link: String,
}

/// A federated identity credential of an application (workload identity federation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FederatedIdentityCredential {
    #[serde(default, skip_serializing)]
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
