//! `AzureAppRegistration`: one Entra ID application, its service principal, its admin consent and
//! its client secret, kept in a Kubernetes Secret and rotated before it expires.
// kube-derive's repeated `printcolumn(...)` attributes trip this lint; they are distinct columns.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ClientSecretSpec, Cloud, Permission};
use super::tenant::TenantReference;

/// Desired state of an Entra ID application registration and its client secret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "connectemail.dev",
    version = "v1alpha1",
    kind = "AzureAppRegistration",
    namespaced,
    status = "AzureAppRegistrationStatus",
    shortname = "azapp",
    category = "connectemail",
    doc = "An Entra ID (Azure AD) application registration whose client secret the operator keeps in a Secret and rotates before it expires.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantRef.name"),
    printcolumn(name = "Admitted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Admitted\")].status"),
    printcolumn(name = "App ID", type_ = "string", json_path = ".status.appId"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.clientSecret.secretName"),
    printcolumn(name = "Secret Expiry", type_ = "string", json_path = ".status.credential.notAfter"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(oldSelf.adopt) || (has(self.adopt) && self.adopt.appId == oldSelf.adopt.appId)",
     "message": "adopt.appId is immutable once set: create a new resource to manage another application"},
    {"rule": "has(oldSelf.adopt) || !has(self.adopt)",
     "message": "adopt can only be set when the resource is created; the operator already manages an application of its own"}
]))]
pub struct AzureAppRegistrationSpec {
    /// The EntraTenant (cluster-scoped, set up by the cluster administrator) whose tenant the
    /// application lives in; it must admit this namespace and allow what this resource asks for.
    /// Immutable.
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "tenantRef is immutable: create a new resource for another tenant"}
    ]))]
    pub tenant_ref: TenantReference,
    /// Display name of the application in Entra ID.
    #[schemars(length(min = 1, max = 120))]
    pub display_name: String,
    /// Who may sign in: AzureADMyOrg (single tenant, default), AzureADMultipleOrgs,
    /// AzureADandPersonalMicrosoftAccount or PersonalMicrosoftAccount.
    #[serde(default)]
    pub sign_in_audience: SignInAudience,
    /// Web platform redirect URIs (https, at most 256 characters each), e.g. the Webex Connect
    /// callback URL. The list replaces what is in Entra ID.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(u, u.startsWith('https://'))",
         "message": "redirectUris must use https:// (Entra ID rejects other schemes for web apps)"}
    ]))]
    pub redirect_uris: Vec<String>,
    /// Implicit grant settings of the web platform ("Access tokens" / "ID tokens" checkboxes).
    #[serde(default)]
    pub implicit_grant: ImplicitGrant,
    /// API permissions, named as in the portal and resolved against the tenant at reconcile time.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub permissions: Vec<Permission>,
    /// Grant admin consent for `permissions`: app role assignments for application permissions;
    /// for delegated ones a grant for each user of `consentFor`, or (only where the EntraTenant
    /// allows `permissions.tenantWideConsent`, and `consentFor` is empty) one for every user of
    /// the tenant, as "Grant admin consent" in the portal.
    #[serde(default = "default_true")]
    pub admin_consent: bool,
    /// The users delegated permissions are consented for, by mailbox address (each must be a
    /// mailbox the EntraTenant lists; the operator looks up its Entra user). Only these users
    /// can sign in to the application without being asked for consent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 3, max = 254)))]
    pub consent_for: Vec<String>,
    /// Client secret issuance and rotation.
    pub client_secret: ClientSecretSpec,
    /// Take over an existing application instead of creating one. Passwords the operator did not
    /// create are never modified or removed. Can only be set at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<Adopt>,
    /// What happens to the Entra application when this resource is deleted: Delete (default;
    /// soft-deleted, restorable for 30 days) or Orphan (left as is, operator passwords removed).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_true() -> bool {
    true
}

impl AzureAppRegistration {
    /// The tenant and cloud the application lives in, once an EntraTenant has admitted the resource.
    pub fn tenant(&self) -> Option<(&str, Cloud)> {
        let status = self.status.as_ref()?;
        Some((status.tenant_id.as_deref()?, status.cloud.unwrap_or_default()))
    }
}

/// Supported account types of the application.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SignInAudience {
    #[default]
    AzureADMyOrg,
    AzureADMultipleOrgs,
    AzureADandPersonalMicrosoftAccount,
    PersonalMicrosoftAccount,
}

impl SignInAudience {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AzureADMyOrg => "AzureADMyOrg",
            Self::AzureADMultipleOrgs => "AzureADMultipleOrgs",
            Self::AzureADandPersonalMicrosoftAccount => "AzureADandPersonalMicrosoftAccount",
            Self::PersonalMicrosoftAccount => "PersonalMicrosoftAccount",
        }
    }
}

/// Implicit grant flags of the web platform.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImplicitGrant {
    /// Issue access tokens through the implicit flow (the TAC guide turns this on).
    #[serde(default)]
    pub access_tokens: bool,
    /// Issue ID tokens through the implicit flow.
    #[serde(default)]
    pub id_tokens: bool,
}

/// An existing application to take over.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adopt {
    /// Application (client) ID of the existing registration, a GUID.
    #[schemars(length(max = 36))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",
         "message": "adopt.appId must be the application (client) ID GUID shown on the app's Overview page"}
    ]))]
    pub app_id: String,
}

/// What deleting the resource does to the external application.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Orphan,
}

/// Observed state of the application and its credentials.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureAppRegistrationStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Admitted, CredentialReady, ConsentGranted, Rotating.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The tenant the application was created in (from the EntraTenant when it first admitted
    /// this resource); deletion cleans up there even if the EntraTenant is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The cloud of `tenantId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    /// The application's uniqueName in Entra ID (derived from this resource's UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    /// Application (client) ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Object ID of the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Object ID of the application's service principal in the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_id: Option<String>,
    /// The current client secret (never its value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialStatus>,
    /// Earlier secrets still valid, waiting to be revoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_credentials: Vec<PreviousCredential>,
    /// A rotation recorded before calling addPassword, so a crash between issuing the secret and
    /// storing it is detected and cleaned up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_rotation: Option<PendingRotation>,
    /// Permissions granted by admin consent, as resolved names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granted_permissions: Vec<Permission>,
    /// Consent the operator granted itself, pair by pair: on an adopted application it withdraws
    /// only these, never what people granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub granted_consent: Vec<GrantedConsent>,
    /// Value of the `connectemail.dev/rotate` annotation already acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_request: Option<String>,
    /// New client secrets the token endpoint rejected in a row; issuing stops at three until the
    /// rotate annotation changes (a key that never works must not multiply on the application).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected_in_a_row: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Admin consent the operator granted on one resource API.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantedConsent {
    /// Object ID of the resource API's service principal.
    pub resource_id: String,
    /// App role IDs (application permissions) the operator assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_role_ids: Vec<String>,
    /// Delegated scopes the operator added to the grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The user (Entra object ID) the delegated grant is for; none for the tenant-wide grant and
    /// for app role assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
}

/// The current client secret's metadata.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    /// keyId of the password credential in Entra ID.
    pub key_id: String,
    /// First characters of the secret as Entra ID shows them (not the secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Start of validity.
    pub not_before: Time,
    /// Expiry.
    pub not_after: Time,
    /// When the operator will rotate it.
    pub renewal_time: Time,
    /// When the token endpoint first accepted it; unset while it is being verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Time>,
}

/// A previous secret kept valid for consumers until it is revoked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousCredential {
    /// keyId of the password credential in Entra ID.
    pub key_id: String,
    /// Expiry.
    pub not_after: Time,
    /// Earliest revocation time (verified successor + revokeAfter); unset until the successor is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_at: Option<Time>,
}

/// Intent recorded before a password is added.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRotation {
    /// Display name the new password carries in Entra ID; identifies it after a crash.
    pub marker: String,
    /// When the intent was recorded.
    pub requested_at: Time,
    /// Why a new secret is issued (not a condition reason): Initial, SecretMissing,
    /// RemovedExternally, Rejected, Expired, Renewal or Forced.
    pub reason: String,
}
