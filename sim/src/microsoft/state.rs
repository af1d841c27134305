//! The simulated directory: tenants with their applications, service principals, consent and
//! issued tokens, plus the simulator's clock and global behaviour settings.
//!
//! Everything lives behind plain `std::sync::Mutex`es that are never held across an `.await`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::auth::IssuedToken;
use super::delta::DeltaState;
use super::exchange::model::SimMailbox;
use super::exchange::org::ExchangeOrg;
use super::options::SimOptions;
use crate::calls::CallLog;
use crate::faults::FaultTable;
use crate::random;
use crate::server::SimRequest;
use crate::sync::lock;

/// Office 365 Exchange Online, present in every tenant.
pub const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
/// Microsoft Graph, present in every tenant.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// An application registration (`microsoft.graph.application`), including its password
/// credentials *with their secret text*. The secret text is kept only so tests can assert on it;
/// Graph never returns it after `addPassword`, and neither does the simulator.
#[derive(Clone, Debug, PartialEq)]
pub struct SimApplication {
    /// Object ID.
    pub id: String,
    /// Application (client) ID.
    pub app_id: String,
    pub unique_name: Option<String>,
    pub display_name: String,
    pub sign_in_audience: String,
    pub redirect_uris: Vec<String>,
    pub implicit_access_token_issuance: bool,
    pub implicit_id_token_issuance: bool,
    pub required_resource_access: Vec<SimRequiredResourceAccess>,
    pub tags: Vec<String>,
    pub notes: Option<String>,
    pub passwords: Vec<SimPassword>,
    pub created: Timestamp,
    /// Set while the application sits in deleted items.
    pub deleted: Option<Timestamp>,
    /// Other writable application properties (description, identifierUris, spa, …), stored and
    /// echoed verbatim.
    pub other_properties: serde_json::Map<String, serde_json::Value>,
    /// Federated identity credentials (`/applications/{id}/federatedIdentityCredentials`); the
    /// token endpoint accepts an assertion matching one of them as this application.
    pub federated_credentials: Vec<SimFederatedCredential>,
}

/// A federated identity credential of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFederatedCredential {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRequiredResourceAccess {
    pub resource_app_id: String,
    pub resource_access: Vec<SimResourceAccess>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimResourceAccess {
    pub id: String,
    /// `Role` (application permission) or `Scope` (delegated permission).
    pub kind: String,
}

/// A password credential. `Debug` never prints the secret text.
#[derive(Clone, PartialEq)]
pub struct SimPassword {
    pub key_id: String,
    pub display_name: Option<String>,
    pub hint: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// When the simulator created it (drives the propagation delay).
    pub created: Timestamp,
    /// For test assertions only.
    pub secret_text: String,
}

impl fmt::Debug for SimPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimPassword")
            .field("key_id", &self.key_id)
            .field("display_name", &self.display_name)
            .field("hint", &self.hint)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("created", &self.created)
            .field("secret_text", &"<redacted>")
            .finish()
    }
}

/// A service principal (enterprise application).
#[derive(Clone, Debug, PartialEq)]
pub struct SimServicePrincipal {
    pub id: String,
    pub app_id: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub app_owner_organization_id: Option<String>,
    pub app_roles: Vec<SimPermission>,
    pub oauth2_permission_scopes: Vec<SimPermission>,
    pub tags: Vec<String>,
    pub created: Timestamp,
    /// `appRoleAssignmentRequired` ("Assignment required?" of the enterprise application): only
    /// users with an app role assignment on it may sign in to the application.
    pub app_role_assignment_required: bool,
}

/// An app role or a delegated permission scope published by a resource service principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimPermission {
    pub id: String,
    pub value: String,
    pub display_name: String,
}

/// An application-permission grant (`appRoleAssignment`).
#[derive(Clone, Debug, PartialEq)]
pub struct SimAppRoleAssignment {
    pub id: String,
    pub principal_id: String,
    pub resource_id: String,
    pub app_role_id: String,
    pub created: Timestamp,
}

/// The app role ID of "default access": assigns a user to an application without a specific app
/// role (documented for `appRoleAssignment.appRoleId`).
pub const DEFAULT_ACCESS_ROLE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A user of the directory (`microsoft.graph.user`), as far as signing in needs one. A mailbox's
/// `ExternalDirectoryObjectId` is its user's `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    /// Object ID (GUID).
    pub id: String,
    pub user_principal_name: String,
    /// Holds an administrator role that may grant consent for the tenant (e.g. Global or Cloud
    /// Application Administrator): the simulator does not model roles one by one.
    pub admin: bool,
}

/// A delegated-permission grant (`oAuth2PermissionGrant`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOAuth2Grant {
    pub id: String,
    pub client_id: String,
    pub consent_type: String,
    pub principal_id: Option<String>,
    pub resource_id: String,
    pub scope: String,
}

/// How the operator itself authenticates.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum OperatorCredential {
    Secret(String),
    /// Federated: any assertion whose claims look right, optionally pinned to an issuer/subject.
    Federated {
        issuer: Option<String>,
        subject: Option<String>,
    },
}

impl fmt::Debug for OperatorCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperatorCredential::Secret(_) => f.write_str("Secret(<redacted>)"),
            OperatorCredential::Federated { issuer, subject } => {
                f.debug_struct("Federated").field("issuer", issuer).field("subject", subject).finish()
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Tenant {
    pub applications: Vec<SimApplication>,
    pub service_principals: Vec<SimServicePrincipal>,
    pub assignments: Vec<SimAppRoleAssignment>,
    pub grants: Vec<SimOAuth2Grant>,
    /// Recent Graph writes per calling client, for the write rate limit.
    pub writes: HashMap<String, VecDeque<Timestamp>>,
    /// Recent resource units per calling client, for the resource-unit limit.
    pub units: HashMap<String, VecDeque<(Timestamp, u32)>>,
    /// Delta query tokens and page sessions.
    pub delta: DeltaState,
    /// The tenant's Exchange Online organization.
    pub exchange: ExchangeOrg,
    /// Users (see [`Tenant::user`]: a mailbox's user resolves even when it is not listed here).
    pub users: Vec<SimUser>,
    /// The tenant's user consent setting: whether users may consent to applications themselves
    /// ("Allow user consent for apps"). Off by default, as Microsoft now recommends.
    pub user_consent_allowed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Directory {
    pub tenants: BTreeMap<String, Tenant>,
    /// (tenant, client ID) → credential.
    pub operators: HashMap<(String, String), OperatorCredential>,
    pub tokens: HashMap<String, IssuedToken>,
    pub issued_secrets: Vec<String>,
    /// Device authorization requests (`/devicecode`), by device code.
    pub device_codes: HashMap<String, DeviceCode>,
    /// Refresh tokens issued by the delegated grants (device code, authorization code).
    pub refresh_tokens: HashMap<String, RefreshToken>,
    /// Authorization codes issued by a user's sign-in ([`super::MicrosoftSim::sign_in`]), by code.
    pub authorization_codes: HashMap<String, AuthorizationCode>,
}

/// A refresh token of a delegated grant.
#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub tenant: String,
    pub client_id: String,
    /// The signed-in user's object ID (None for the device code grant, which models no user).
    pub user: Option<String>,
    /// Issued to a confidential client (an application authenticated with its credential): the
    /// refresh request must authenticate it again.
    pub confidential: bool,
}

/// An authorization code: what a user's sign-in hands the application on its redirect URI.
#[derive(Clone, Debug)]
pub(crate) struct AuthorizationCode {
    pub tenant: String,
    pub client_id: String,
    pub user: String,
    pub redirect_uri: String,
    /// The scopes asked for, as sent.
    pub scope: String,
    pub expires: Timestamp,
    /// A code is single use.
    pub redeemed: bool,
}

/// A pending device authorization (OAuth 2.0 device authorization grant).
#[derive(Clone, Debug)]
pub(crate) struct DeviceCode {
    pub tenant: String,
    pub client_id: String,
    pub user_code: String,
    pub scope: String,
    pub expires: Timestamp,
    pub interval: Duration,
    pub last_poll: Option<Timestamp>,
    pub state: DeviceCodeState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceCodeState {
    Pending,
    Approved,
    Declined,
    /// Redeemed once; a device code is single use.
    Redeemed,
}

/// Global behaviour switches, set through [`super::Faults`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Settings {
    pub replication_lag: Duration,
    pub password_propagation: Duration,
    pub password_lifetime_cap: Option<Duration>,
    pub write_rate_limit: Option<(u32, Duration)>,
    pub unit_rate_limit: Option<(u32, Duration)>,
}

/// Everything the request handlers and the public handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub options: SimOptions,
    /// `https://127.0.0.1:PORT`, known once the listener is bound.
    pub base_url: Mutex<String>,
    pub directory: Mutex<Directory>,
    pub faults: Arc<Mutex<FaultTable>>,
    pub settings: Mutex<Settings>,
    pub calls: CallLog,
    /// How far the simulated clock runs ahead of the real one.
    pub clock_offset: Mutex<Duration>,
    /// Extra delay of every request (token endpoint, Graph, Exchange) for a tenant, by tenant ID.
    pub tenant_latency: Mutex<HashMap<String, Duration>>,
}

impl Shared {
    pub fn new(options: SimOptions) -> Shared {
        Shared {
            options,
            base_url: Mutex::new(String::new()),
            directory: Mutex::new(Directory::default()),
            faults: Arc::new(Mutex::new(FaultTable::default())),
            settings: Mutex::new(Settings::default()),
            calls: CallLog::default(),
            clock_offset: Mutex::new(Duration::ZERO),
            tenant_latency: Mutex::new(HashMap::new()),
        }
    }

    /// The simulator's notion of now: real time plus everything `advance_clock` added.
    pub fn now(&self) -> Timestamp {
        let offset = *lock(&self.clock_offset);
        add(Timestamp::now(), offset)
    }

    pub fn base_url(&self) -> String {
        lock(&self.base_url).clone()
    }

    pub fn settings(&self) -> Settings {
        *lock(&self.settings)
    }

    /// The caller behind a bearer token, if the token is one the simulator issued (not
    /// validated): `(tenant, client ID)`, for call records and per-tenant latency.
    pub fn caller(&self, request: &SimRequest) -> Option<(String, String)> {
        let token = request.bearer()?;
        let directory = lock(&self.directory);
        directory.tokens.get(token).map(|t| (t.tenant.clone(), t.client_id.clone()))
    }
}

/// `t + d`, saturating at the largest timestamp.
pub(crate) fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| t.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// Whether something created at `created` is older than `lag` at `now` (visible to replicas).
pub(crate) fn replicated(created: Timestamp, now: Timestamp, lag: Duration) -> bool {
    lag.is_zero() || add(created, lag) <= now
}

/// Deleted directory objects are kept for 30 days, then purged.
pub(crate) fn retention_over(deleted: Timestamp, now: Timestamp) -> bool {
    add(deleted, Duration::from_secs(30 * 24 * 3600)) <= now
}

/// Graph stores times with 100 ns precision.
pub(crate) fn graph_precision(t: Timestamp) -> Timestamp {
    let nanos = t.as_nanosecond();
    Timestamp::from_nanosecond(nanos - nanos.rem_euclid(100)).unwrap_or(t)
}

impl Tenant {
    pub fn new() -> Tenant {
        // Created "long ago" so that replication lag never hides them.
        let created = Timestamp::UNIX_EPOCH;
        Tenant {
            applications: Vec::new(),
            service_principals: vec![exchange_sp(created), graph_sp(created)],
            assignments: Vec::new(),
            grants: Vec::new(),
            writes: HashMap::new(),
            units: HashMap::new(),
            delta: Default::default(),
            exchange: ExchangeOrg::new(),
            users: Vec::new(),
            user_consent_allowed: false,
        }
    }

    /// Adds a user (idempotent by UPN, case-insensitive: an existing user keeps its object ID and
    /// gets `admin`). A user for an existing mailbox with this UPN takes the mailbox's
    /// `ExternalDirectoryObjectId`. Returns the object ID.
    pub fn add_user(&mut self, upn: &str, admin: bool) -> String {
        let upn = upn.trim();
        if let Some(user) = self.users.iter_mut().find(|u| u.user_principal_name.eq_ignore_ascii_case(upn)) {
            user.admin = admin;
            return user.id.clone();
        }
        let id = self
            .exchange
            .mailboxes
            .iter()
            .find(|m| m.user_principal_name.eq_ignore_ascii_case(upn))
            .map(|m| m.external_directory_object_id.clone())
            .unwrap_or_else(random::guid);
        self.users.push(SimUser { id: id.clone(), user_principal_name: upn.to_string(), admin });
        id
    }

    /// Adds a user mailbox *and its directory user*, with one object ID (the mailbox's
    /// `ExternalDirectoryObjectId` is the user's `id`): an existing user with this UPN keeps its
    /// ID and the new mailbox takes it; otherwise a (non-admin) user is registered with the
    /// mailbox's ID. Idempotent like [`ExchangeOrg::add_mailbox`]. This is how the Exchange side
    /// creates mailboxes (`ExchangeSim::add_mailbox`).
    pub fn add_mailbox(&mut self, upn: &str) -> SimMailbox {
        let existed = self.exchange.mailbox(upn).is_some();
        let mut mailbox = self.exchange.add_mailbox(upn);
        if existed {
            return mailbox;
        }
        let user = self.users.iter().find(|u| u.user_principal_name.eq_ignore_ascii_case(&mailbox.user_principal_name));
        match user {
            Some(user) => {
                if let Some(index) = self.exchange.mailbox_index(&mailbox.user_principal_name) {
                    self.exchange.mailboxes[index].external_directory_object_id = user.id.clone();
                    mailbox = self.exchange.mailboxes[index].clone();
                }
            }
            None => self.users.push(SimUser {
                id: mailbox.external_directory_object_id.clone(),
                user_principal_name: mailbox.user_principal_name.clone(),
                admin: false,
            }),
        }
        mailbox
    }

    /// The user with this object ID: a registered user, else the user behind a mailbox (its
    /// `ExternalDirectoryObjectId`; not an admin).
    pub fn user(&self, object_id: &str) -> Option<SimUser> {
        let object_id = object_id.trim();
        self.users.iter().find(|u| u.id.eq_ignore_ascii_case(object_id)).cloned().or_else(|| {
            self.exchange.mailboxes.iter().find(|m| m.external_directory_object_id.eq_ignore_ascii_case(object_id)).map(
                |m| SimUser {
                    id: m.external_directory_object_id.clone(),
                    user_principal_name: m.user_principal_name.clone(),
                    admin: false,
                },
            )
        })
    }

    /// Every user: the registered ones, then the users of mailboxes not among them.
    pub fn all_users(&self) -> Vec<SimUser> {
        let mut users = self.users.clone();
        for m in &self.exchange.mailboxes {
            if !users.iter().any(|u| u.id.eq_ignore_ascii_case(&m.external_directory_object_id)) {
                users.push(SimUser {
                    id: m.external_directory_object_id.clone(),
                    user_principal_name: m.user_principal_name.clone(),
                    admin: false,
                });
            }
        }
        users
    }

    pub fn live_app_by_app_id(&self, app_id: &str) -> Option<&SimApplication> {
        self.applications.iter().find(|a| a.deleted.is_none() && a.app_id.eq_ignore_ascii_case(app_id))
    }

    pub fn sp_by_app_id(&self, app_id: &str) -> Option<&SimServicePrincipal> {
        self.service_principals.iter().find(|sp| sp.app_id.eq_ignore_ascii_case(app_id))
    }

    pub fn sp_by_id(&self, id: &str) -> Option<&SimServicePrincipal> {
        self.service_principals.iter().find(|sp| sp.id.eq_ignore_ascii_case(id))
    }

    /// Removes a service principal and every grant that involves it.
    pub fn remove_sp(&mut self, sp_id: &str) {
        self.service_principals.retain(|sp| !sp.id.eq_ignore_ascii_case(sp_id));
        self.assignments
            .retain(|a| !a.principal_id.eq_ignore_ascii_case(sp_id) && !a.resource_id.eq_ignore_ascii_case(sp_id));
        self.grants.retain(|g| !g.client_id.eq_ignore_ascii_case(sp_id) && !g.resource_id.eq_ignore_ascii_case(sp_id));
    }

    /// Permanently removes applications that have been in deleted items for 30 days.
    pub fn purge_expired(&mut self, now: Timestamp) {
        let retention = Duration::from_secs(30 * 24 * 3600);
        self.applications.retain(|a| a.deleted.is_none_or(|deleted| add(deleted, retention) > now));
    }
}

fn permission(id: &str, value: &str, display_name: &str) -> SimPermission {
    SimPermission { id: id.to_string(), value: value.to_string(), display_name: display_name.to_string() }
}

/// Office 365 Exchange Online. IDs are the real ones, confirmed against a public catalogue of the
/// first-party service principal's `appRoles` / `oauth2PermissionScopes`.
fn exchange_sp(created: Timestamp) -> SimServicePrincipal {
    SimServicePrincipal {
        id: random::guid(),
        app_id: EXCHANGE_APP_ID.to_string(),
        display_name: "Office 365 Exchange Online".to_string(),
        account_enabled: true,
        app_owner_organization_id: Some(MICROSOFT_TENANT.to_string()),
        app_roles: vec![
            permission("b633e1c5-b582-4048-a93e-9f11b44c7e96", "Mail.Send", "Send mail as any user"),
            permission(
                "7146a1f0-8703-45b3-9eae-527a64c00995",
                "SMTP.SendAsApp",
                "Send emails from mailboxes using SMTP AUTH.",
            ),
            permission(
                "dc50a0fb-09a3-484d-be87-e023b12c6440",
                "Exchange.ManageAsApp",
                "Manage Exchange As Application",
            ),
            permission(
                "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
                "full_access_as_app",
                "Use Exchange Web Services with full access to all mailboxes",
            ),
        ],
        oauth2_permission_scopes: vec![
            permission(
                "76faac2a-0f20-42f1-928a-50de5b9dbe52",
                "SMTP.Send",
                "Access to sending emails from your mailbox using SMTP AUTH",
            ),
            permission(
                "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5",
                "EWS.AccessAsUser.All",
                "Access mailboxes as the signed-in user via Exchange Web Services",
            ),
            permission(
                "195adc35-e27b-454b-a7ed-1ecdffa1c09f",
                "IMAP.AccessAsUser.All",
                "Read and write access to your mail via IMAP",
            ),
            permission(
                "fb698133-92fa-453e-a9ed-688e10f2e5ac",
                "POP.AccessAsUser.All",
                "Read and write access to your mail via POP",
            ),
        ],
        tags: Vec::new(),
        created,
        app_role_assignment_required: false,
    }
}

/// Microsoft Graph. IDs are the real ones (published permission reference; cross-checked in
/// public code).
fn graph_sp(created: Timestamp) -> SimServicePrincipal {
    SimServicePrincipal {
        id: random::guid(),
        app_id: GRAPH_APP_ID.to_string(),
        display_name: "Microsoft Graph".to_string(),
        account_enabled: true,
        app_owner_organization_id: Some(MICROSOFT_TENANT.to_string()),
        app_roles: vec![
            permission("b633e1c5-b582-4048-a93e-9f11b44c7e96", "Mail.Send", "Send mail as any user"),
            permission(
                "18a4783c-866b-4cc7-a460-3d5e5662c884",
                "Application.ReadWrite.OwnedBy",
                "Manage apps that this app creates or owns",
            ),
            permission("df021288-bdef-4463-88db-98f22de89214", "User.Read.All", "Read all users' full profiles"),
            permission("9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", "Application.Read.All", "Read all applications"),
            permission(
                "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
                "Application.ReadWrite.All",
                "Read and write all applications",
            ),
            permission(
                "06b708a9-e830-4db3-a914-8e69da51d44f",
                "AppRoleAssignment.ReadWrite.All",
                "Manage app permission grants and app role assignments",
            ),
            permission(
                "8e8e4742-1d95-4f68-9d56-6ee75648c72a",
                "DelegatedPermissionGrant.ReadWrite.All",
                "Manage all delegated permission grants",
            ),
            permission("246dd0d5-5bd0-4def-940b-0421030a5b68", "Policy.Read.All", "Read your organization's policies"),
        ],
        oauth2_permission_scopes: vec![
            permission(
                "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
                "offline_access",
                "Maintain access to data you have given it access to",
            ),
            permission("37f7f235-527c-4136-accd-4a02d197296e", "openid", "Sign users in"),
            permission("14dad69e-099b-42c9-810b-d002981feec1", "profile", "View users' basic profile"),
            permission("64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0", "email", "View users' email address"),
            permission("e1fe6dd8-ba31-4d61-89e7-88639da4683d", "User.Read", "Sign in and read user profile"),
            permission("e383f46e-2787-4529-855e-0e479a3ffac0", "Mail.Send", "Send mail as a user"),
        ],
        tags: Vec::new(),
        created,
        app_role_assignment_required: false,
    }
}

/// The tenant that owns Microsoft's first-party applications.
const MICROSOFT_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
