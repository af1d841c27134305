//! `EntraTenant`: the cluster-scoped, administrator-owned binding of a Microsoft tenant to the
//! namespaces that may use it, and the limits of what they may ask of it (the role cert-manager's
//! `ClusterIssuer`, External Secrets' `ClusterSecretStore` and Crossplane's `ProviderConfig` play).
//!
//! Namespaced `AzureAppRegistration`s and `EmailChannel`s name one through `tenantRef`; the
//! operator makes no external call for a resource its tenant object does not admit
//! (see `crate::policy`, which evaluates these rules).
// kube-derive's repeated `printcolumn(...)` attributes trip this lint; they are distinct columns.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Cloud;

/// Microsoft Graph's first-party application ID (the same in every tenant).
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Office 365 Exchange Online's first-party application ID.
pub const EXCHANGE_ONLINE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// A Microsoft tenant, the namespaces that may use it and what they may ask of it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "connectemail.dev",
    version = "v1alpha1",
    kind = "EntraTenant",
    shortname = "entratenant",
    shortname = "tenant",
    category = "connectemail",
    doc = "An Entra ID tenant that namespaces selected by the cluster administrator may use, with limits on the permissions, mailboxes, forwarding destinations and adoption they may ask for.",
    printcolumn(name = "Tenant ID", type_ = "string", json_path = ".spec.tenantId"),
    printcolumn(name = "Cloud", type_ = "string", json_path = ".spec.cloud"),
    printcolumn(name = "Admin Consent", type_ = "boolean", json_path = ".spec.permissions.adminConsent"),
    printcolumn(name = "Operator Identity", type_ = "string", json_path = ".spec.credential.clientId", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct EntraTenantSpec {
    /// Directory (tenant) ID, a GUID (Entra admin center → Overview → Tenant ID). Immutable.
    #[schemars(length(max = 36))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",
         "message": "tenantId must be the tenant's GUID, e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47 (Entra admin center → Overview → Tenant ID)"},
        {"rule": "self == oldSelf", "message": "tenantId is immutable: create another EntraTenant for another tenant"}
    ]))]
    pub tenant_id: String,
    /// Microsoft cloud: AzurePublic (default), AzureUSGovernment or AzureChina. Immutable.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "cloud is immutable: create another EntraTenant for another cloud"}
    ]))]
    pub cloud: Cloud,
    /// Namespaces whose resources may use this tenant, by label (`kubernetes.io/metadata.name`
    /// selects one namespace by name). Required: `{}` admits every namespace, which only a
    /// cluster with a single team should use.
    #[schemars(schema_with = "namespace_selector_schema")]
    pub namespace_selector: LabelSelector,
    /// Mailboxes channels may configure: addresses (`support@contoso.com`), a whole domain
    /// (`*@contoso.com`) or its subdomains (`*@*.contoso.com`). Compared case-insensitively;
    /// a mailbox with `+tag`, a trailing dot or any other form must be listed as such.
    #[schemars(length(min = 1, max = 256), inner(length(min = 3, max = 254)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(p, p.matches('^([^@*\\\\s]+|[*])@([*][.])?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+$'))",
         "message": "mailboxes entries must be an address (support@contoso.com), a domain (*@contoso.com) or its subdomains (*@*.contoso.com)"}
    ]))]
    pub mailboxes: Vec<String>,
    /// The Webex Connect organisations resources may use: every redirect URI the operator writes
    /// on an application, and every channel's `connect.tenantHost`, must be one of these hosts.
    /// Nothing listed: every resource with a redirect URI or a channel is refused.
    #[serde(default)]
    pub connect: ConnectPolicy,
    /// Where mailboxes may be forwarded.
    #[serde(default)]
    pub forwarding: ForwardingPolicy,
    /// The API permissions applications may be granted, and whether admin consent may be granted.
    #[serde(default)]
    pub permissions: PermissionPolicy,
    /// Whether the operator may change a mailbox's forwarding or SMTP AUTH setting that was set
    /// before it managed the mailbox (default: no; the channel then reports the conflict).
    #[serde(default)]
    pub mailbox_settings: MailboxSettingsPolicy,
    /// Whether resources may adopt existing applications (default: no).
    #[serde(default)]
    pub adoption: AdoptionPolicy,
    /// The identity the operator uses in this tenant. Default: the operator's own (its workload
    /// identity or `AZURE_*` environment). Set it when one operator serves several tenants, each
    /// with its own application for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<TenantCredential>,
}

/// The operator's identity in one tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.source == 'WorkloadIdentity' ? !has(self.secretRef) : has(self.secretRef)",
     "message": "credential.secretRef is required for the ClientSecret and Certificate sources and not allowed for WorkloadIdentity"}
]))]
pub struct TenantCredential {
    /// Application (client) ID of the operator's application in this tenant.
    #[schemars(length(max = 36))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",
         "message": "credential.clientId must be the application (client) ID GUID of the operator's application in this tenant"}
    ]))]
    pub client_id: String,
    /// How the operator proves it is that application: `WorkloadIdentity` (default: the operator
    /// pod's projected service account token, trusted by a federated credential on the
    /// application), `ClientSecret` or `Certificate` (from `secretRef`).
    #[serde(default)]
    pub source: CredentialSource,
    /// A Secret in the operator's own namespace (never a user namespace): for `ClientSecret` the
    /// key `clientSecret` (or `key`), for `Certificate` a `kubernetes.io/tls` Secret (`tls.crt`
    /// and a PKCS#8 RSA `tls.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<CredentialSecretRef>,
}

/// How the operator authenticates as its application in a tenant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CredentialSource {
    #[default]
    WorkloadIdentity,
    ClientSecret,
    Certificate,
}

/// A Secret in the operator's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSecretRef {
    /// Name of the Secret in the operator's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the client secret (`ClientSecret` only; default `clientSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

fn namespace_selector_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<LabelSelector>();
    // The apiserver does not validate a label selector inside a custom resource: do it here, so a
    // mistyped operator is refused at admission instead of admitting nothing (or everything).
    schema.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([
            {"rule": "!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",
             "message": "namespaceSelector.matchExpressions[].operator must be In, NotIn, Exists or DoesNotExist"},
            {"rule": "!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",
             "message": "namespaceSelector.matchExpressions[].values must be non-empty for In and NotIn and empty for Exists and DoesNotExist"}
        ]),
    );
    schema
}

/// The Webex Connect organisations of this tenant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectPolicy {
    /// Webex Connect tenant hosts, exactly as in the Connect URL (`contoso.us.webexconnect.io`).
    /// A redirect URI is allowed only as `https://<host>/callback` on one of them (no port, no
    /// user information; case and a trailing dot are ignored), so a sign-in's authorization code
    /// only ever goes to the organisation's own Connect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(h, h.matches('^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+[.]?$'))",
         "message": "connect.tenantHosts entries must be host names such as contoso.us.webexconnect.io (no scheme, port, path or wildcard)"}
    ]))]
    pub tenant_hosts: Vec<String>,
}

/// Forwarding destinations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardingPolicy {
    /// Allow Webex Connect's generated forwarding addresses (32 hexadecimal characters
    /// `@mail-<region>.imiconnect.io`, region us, eu, uk, ca, au, sg or in). Default true.
    #[serde(default = "default_true")]
    pub connect_addresses: bool,
    /// Further destinations: addresses or `*@domain`. Anything else is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 3, max = 254)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(p, p.matches('^([^@*\\\\s]+|[*])@[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)+$'))",
         "message": "forwarding.allowedDestinations entries must be an address (team@partner.example) or a domain (*@partner.example)"}
    ]))]
    pub allowed_destinations: Vec<String>,
}

impl Default for ForwardingPolicy {
    fn default() -> Self {
        Self { connect_addresses: true, allowed_destinations: Vec::new() }
    }
}

/// Grantable permissions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionPolicy {
    /// Whether resources may ask for admin consent at all (default true: an EmailChannel's
    /// delegated permissions need it).
    #[serde(default = "default_true")]
    pub admin_consent: bool,
    /// Whether delegated permissions may be consented for every user of the tenant
    /// (`consentType: AllPrincipals`, what "Grant admin consent" in the portal does). Default
    /// false: consent is granted only for the users a resource names (an EmailChannel: its
    /// mailbox's user), so no one else can use the application without consenting themselves.
    #[serde(default)]
    pub tenant_wide_consent: bool,
    /// Sign-in by assigned users only: the service principal of each application consented for
    /// named users gets "Assignment required?" and an assignment of exactly those users, so no
    /// one else can sign in even by consenting themselves. Costs the operator Graph's
    /// `AppRoleAssignment.ReadWrite.All` (Microsoft lists no narrower permission for assigning a
    /// user), which can also grant any application permission: `setup tenant --assigned-users-only`.
    /// Default false.
    #[serde(default)]
    pub assigned_users_only: bool,
    /// Permissions applications may request, by resource application ID. Default: exactly what an
    /// EmailChannel needs (delegated `SMTP.Send` on Office 365 Exchange Online, delegated
    /// `offline_access` on Microsoft Graph). Application permissions are allowed only when listed.
    #[serde(default = "default_allowed_permissions")]
    #[schemars(length(max = 64))]
    pub allowed: Vec<AllowedPermission>,
}

impl Default for PermissionPolicy {
    fn default() -> Self {
        Self {
            admin_consent: true,
            tenant_wide_consent: false,
            assigned_users_only: false,
            allowed: default_allowed_permissions(),
        }
    }
}

/// The permissions of one API that may be requested.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedPermission {
    /// The API's application ID, e.g. `00000002-0000-0ff1-ce00-000000000000` (Office 365 Exchange
    /// Online) or `00000003-0000-0000-c000-000000000000` (Microsoft Graph).
    #[schemars(length(max = 36))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')",
         "message": "permissions.allowed[].resourceAppId must be the API's application ID GUID"}
    ]))]
    pub resource_app_id: String,
    /// Delegated permissions (scopes) by value, e.g. `SMTP.Send`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    pub delegated: Vec<String>,
    /// Application permissions (app roles) by value, e.g. `Mail.Send`. Each lets an application
    /// act without a signed-in user, usually on every mailbox or user of the tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    pub application: Vec<String>,
}

fn default_allowed_permissions() -> Vec<AllowedPermission> {
    vec![
        AllowedPermission {
            resource_app_id: EXCHANGE_ONLINE_APP_ID.into(),
            delegated: vec!["SMTP.Send".into()],
            application: vec![],
        },
        AllowedPermission {
            resource_app_id: MICROSOFT_GRAPH_APP_ID.into(),
            delegated: vec!["offline_access".into()],
            application: vec![],
        },
    ]
}

/// Taking over mailbox settings the operator did not set.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSettingsPolicy {
    /// Allow replacing an existing forwarding or an explicit SMTP AUTH setting. The previous
    /// values are recorded in the channel's status and restored when the channel is deleted.
    #[serde(default)]
    pub take_over: bool,
}

/// Adoption of existing applications.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionPolicy {
    /// Allow `adopt.appId` at all (default false). Even then an application is adopted only if
    /// it opts in on the Entra side: a tag `connectemail.dev/adopt:<namespace>/<name>` set by
    /// someone with rights on the application.
    #[serde(default)]
    pub allowed: bool,
    /// Limit adoption to these application IDs (empty: any application that opts in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 36)))]
    pub app_ids: Vec<String>,
}

fn default_true() -> bool {
    true
}

/// A reference to an `EntraTenant` (cluster-scoped) by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TenantReference {
    /// Name of the EntraTenant.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
