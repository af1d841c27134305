//! A stateful simulator of the Microsoft identity platform token endpoint, the Microsoft Graph
//! v1.0 calls the operator makes and Exchange Online's admin API, served over real HTTPS on
//! loopback.
//!
//! One server plays all three hosts: `{url}/{tenant}/oauth2/v2.0/token` is the authority,
//! `{url}/v1.0/…` is Graph and `{url}/adminapi/beta/{tenant}/InvokeCommand` is Exchange (see
//! [`exchange`] and [`MicrosoftSim::exchange`]). Configure a client with the simulator's URL as the
//! authority host, the Graph endpoint and the Exchange endpoint, and trust [`MicrosoftSim::ca_pem`].
//!
//! ```text
//!   operator identity ──client secret / federated assertion──▶ token endpoint ──▶ bearer token
//!                                                                 ▲                 │ (Graph audience)
//!   application passwords (addPassword) ──client secret───────────┘                 ▼
//!   tenant: applications ─┬─ passwordCredentials          Graph v1.0 ◀──────────────┘
//!                         └─ service principal ── appRoleAssignments / oauth2PermissionGrants
//!                            (resource SPs: Office 365 Exchange Online, Microsoft Graph)
//! ```
//!
//! What it reproduces: upserts by `uniqueName` / `appId` with `Prefer: create-if-missing`
//! (201/204/404), PATCH replacing collections, `secretText` returned once, soft delete with
//! restore and purge, the documented error bodies of both services, secret expiry and propagation
//! at the token endpoint, replication lag (`Request_ResourceNotFound`,
//! `NoBackingApplicationObject`), the app management policy's password lifetime cap, write
//! throttling, paging, and injected 429/503/latency/connection resets, lost responses (the change
//! made, the answer dropped) and slow tenants ([`Faults`]). Every request is recorded
//! ([`MicrosoftSim::calls`]) under a route template from [`routes`].
//!
//! Users sign in to applications with the authorization code flow ([`MicrosoftSim::sign_in`],
//! then `grant_type=authorization_code` at the token endpoint): redirect URI, assignment and
//! consent checks, user consent, single-use codes (see `sign_in.rs`). Users are added with
//! [`MicrosoftSim::add_user`]; a mailbox's `ExternalDirectoryObjectId` is a user too.
//!
//! What it does not do: verify signatures of federated assertions (only their claims), enforce
//! the caller's Graph permissions (any Graph token of the tenant may call any route), serve Graph
//! `/users` or the sign-in pages, or model certificates, owners, groups and passwords of users.
//! Lists (`$filter` queries, deleted items) are not subject to replication lag; reads and writes
//! by key are.
//!
//! The simulated clock ([`MicrosoftSim::advance_clock`]) drives secret expiry, token expiry, the
//! 30-day deleted-items retention, replication lag and the write-rate window.
//!
//! # Where the behaviour comes from
//! Confirmed from Microsoft's documentation: the upsert status codes (application-upsert,
//! serviceprincipal-upsert), the `defaultAppManagementPolicy` shape (tenantappmanagementpolicy-get)
//! and `passwordCredentialConfiguration.maxLifetime`, the 429 body (throttling) and the
//! `x-ms-throttle-scope` / `x-ms-throttle-information` headers (throttling-limits).
//! Confirmed from bodies quoted in public issues and code: the AADSTS error bodies (7000215,
//! 7000222, 700016, 90002, 70011, 1002012, 7000229), `CredentialInvalidLifetimeAsPerAppPolicy`
//! with detail `InvalidKeyEndDate`, `NoBackingApplicationObject`, `Request_ResourceNotFound`,
//! "Permission being assigned already exists on the object.", "Permission entry already
//! exists." (409), the 409 for a second service principal, "Resource not found for the segment",
//! and the permission IDs of the two resource service principals.
//! Unconfirmed choices are marked where they are made (in `graph/` and `token.rs`). Exchange
//! keeps its own account of sources in [`exchange`].
//!
//! # Layout
//! This file is the public handle ([`MicrosoftSim`]) and the request path shared by the three
//! hosts (latency, routing by [`routes`], faults, the call record). The handlers are `token.rs`,
//! `graph/` (one file per resource family) and `exchange/`, plus `sign_in.rs` (the authorization
//! endpoint, driven from the handle); they share the simulated directory
//! (`state.rs`), the tokens and their audiences (`auth.rs`) and the start options (`options.rs`),
//! and import nothing from this file.

mod aad;
mod auth;
mod delta;
pub mod exchange;
mod faults;
mod graph;
mod options;
pub mod routes;
mod sign_in;
mod state;
mod token;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

pub use crate::calls::CallRecord;
pub use crate::faults::FaultBuilder;
pub use aad::SignInError;
pub use auth::Audience;
pub use exchange::{
    AutoForwardingMode, ExchangeSim, SimExchangeServicePrincipal, SimMailbox, SimManagementScope, SimOutboundPolicy,
    SimOutboundRule, SimRoleAssignment,
};
pub use faults::Faults;
pub use options::SimOptions;
pub use state::{
    DEFAULT_ACCESS_ROLE_ID, EXCHANGE_APP_ID, GRAPH_APP_ID, SimAppRoleAssignment, SimApplication,
    SimFederatedCredential, SimOAuth2Grant, SimPassword, SimPermission, SimRequiredResourceAccess, SimResourceAccess,
    SimServicePrincipal, SimUser,
};

use crate::faults::{FaultAction, sleep_between};
use aad::AadError;
use graph::{GraphError, RequestIds};
use routes::Op;
use state::{OperatorCredential, Shared, Tenant, add};

use crate::random;
use crate::server::{self, Outcome, ServerHandle, SimRequest};
use crate::sync::lock;
use crate::tls::TestCa;

/// The Azure CLI's public client ID (the client of `az account get-access-token`).
pub const AZURE_CLI_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

/// The running simulator. Dropping it stops the server.
pub struct MicrosoftSim {
    shared: Arc<Shared>,
    /// Dropping it stops the listener and closes every connection.
    _server: ServerHandle,
    ca: TestCa,
}

impl std::fmt::Debug for MicrosoftSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrosoftSim").field("url", &self.url()).finish_non_exhaustive()
    }
}

impl MicrosoftSim {
    /// Binds 127.0.0.1:0 (or `options.listen`) and serves HTTPS; one server for both the
    /// authority and Graph.
    pub async fn start(options: SimOptions) -> std::io::Result<MicrosoftSim> {
        let ca = TestCa::generate()?;
        let listen = options.listen.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        let tenants = options.tenants.clone();
        let shared = Arc::new(Shared::new(options));
        let handler_shared = shared.clone();
        let server =
            server::serve(listen, ca.server_config(), move |request| serve_request(handler_shared.clone(), request))
                .await?;
        *lock(&shared.base_url) = server.url();
        let sim = MicrosoftSim { shared, _server: server, ca };
        for tenant in tenants {
            sim.add_tenant(&tenant);
        }
        Ok(sim)
    }

    /// `https://127.0.0.1:PORT`: both the authority host and the Graph endpoint.
    pub fn url(&self) -> String {
        self.shared.base_url()
    }

    /// PEM of the test CA that issued the server certificate.
    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem().to_string()
    }

    /// Creates the tenant (idempotent) with the Exchange Online and Microsoft Graph resource
    /// service principals.
    pub fn add_tenant(&self, tenant_id: &str) {
        lock(&self.shared.directory).tenants.entry(tenant_id.to_string()).or_insert_with(Tenant::new);
    }

    /// Registers the operator's own identity with a client secret. It gets tokens for Graph and
    /// Exchange in `tenant_id` (created if missing).
    pub fn add_operator_client_secret(&self, tenant_id: &str, client_id: &str, secret: &str) {
        self.add_operator(tenant_id, client_id, OperatorCredential::Secret(secret.to_string()));
    }

    /// Registers the operator's own identity with workload identity federation: any
    /// `client_assertion` JWT with `aud` = `api://AzureADTokenExchange`, an https `iss`, a
    /// non-empty `sub` and a valid `exp`/`nbf` is accepted. **The signature is not verified.**
    pub fn add_operator_federated(&self, tenant_id: &str, client_id: &str) {
        self.add_operator(tenant_id, client_id, OperatorCredential::Federated { issuer: None, subject: None });
    }

    /// Like [`MicrosoftSim::add_operator_federated`], but the assertion's `iss` and `sub` must
    /// equal these (a federated identity credential); others fail with AADSTS70021.
    pub fn add_operator_federated_credential(&self, tenant_id: &str, client_id: &str, issuer: &str, subject: &str) {
        self.add_operator(
            tenant_id,
            client_id,
            OperatorCredential::Federated { issuer: Some(issuer.to_string()), subject: Some(subject.to_string()) },
        );
    }

    fn add_operator(&self, tenant_id: &str, client_id: &str, credential: OperatorCredential) {
        self.add_tenant(tenant_id);
        lock(&self.shared.directory).operators.insert((tenant_id.to_string(), client_id.to_string()), credential);
    }

    /// Test helper: an access token for `audience` in `tenant_id` as an administrator's sign-in
    /// (e.g. `az account get-access-token`) would give, for the Azure CLI's public client. The
    /// simulator does not check the caller's Graph permissions or Exchange roles, so it stands
    /// for a Global Administrator.
    pub fn issue_admin_token(&self, tenant_id: &str, audience: Audience) -> String {
        self.add_tenant(tenant_id);
        let token = random::string_from(random::BASE64URL, 96);
        let expires = add(self.shared.now(), Duration::from_secs(token::TOKEN_LIFETIME_SECONDS));
        lock(&self.shared.directory).tokens.insert(
            token.clone(),
            auth::IssuedToken {
                tenant: tenant_id.to_string(),
                client_id: AZURE_CLI_CLIENT_ID.to_string(),
                audience,
                expires,
                user: None,
            },
        );
        token
    }

    /// The user codes of device authorizations waiting for a person's sign-in.
    pub fn pending_device_codes(&self) -> Vec<String> {
        lock(&self.shared.directory)
            .device_codes
            .values()
            .filter(|d| d.state == state::DeviceCodeState::Pending)
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// Plays the person who enters `user_code` and signs in (true) or declines (false). Returns
    /// whether such a pending authorization existed.
    pub fn approve_device_code(&self, user_code: &str, approve: bool) -> bool {
        let mut directory = lock(&self.shared.directory);
        let pending = directory
            .device_codes
            .values_mut()
            .find(|d| d.user_code == user_code && d.state == state::DeviceCodeState::Pending);
        match pending {
            Some(d) => {
                d.state = if approve { state::DeviceCodeState::Approved } else { state::DeviceCodeState::Declined };
                true
            }
            None => false,
        }
    }

    /// Test helper: adds a user to the directory (the tenant is created if missing) and returns
    /// its object ID. Idempotent by UPN (case-insensitive): an existing user keeps its ID and
    /// takes `admin` (an administrator may consent for an application at sign-in). A user whose
    /// UPN is an existing mailbox's gets that mailbox's `ExternalDirectoryObjectId`.
    pub fn add_user(&self, tenant_id: &str, upn: &str, admin: bool) -> String {
        self.add_tenant(tenant_id);
        let mut directory = lock(&self.shared.directory);
        directory.tenants.get_mut(tenant_id).expect("added above").add_user(upn, admin)
    }

    /// The tenant's users: those added with [`MicrosoftSim::add_user`], then the users behind
    /// mailboxes (their `ExternalDirectoryObjectId`, not admins).
    pub fn users(&self, tenant_id: &str) -> Vec<SimUser> {
        self.with_tenant(tenant_id, |t| t.all_users())
    }

    /// The tenant's user consent setting ("Allow user consent for apps"; off by default): when on,
    /// a user who signs in to an application lacking consent for a permission consents to it
    /// themselves, which records a `Principal` grant for them (not for applications that require
    /// assignment). Creates the tenant if missing.
    pub fn set_user_consent_allowed(&self, tenant_id: &str, allowed: bool) {
        self.add_tenant(tenant_id);
        let mut directory = lock(&self.shared.directory);
        directory.tenants.get_mut(tenant_id).expect("added above").user_consent_allowed = allowed;
    }

    /// Plays user `user_object_id` signing in to application `client_id` through the
    /// authorization endpoint (`response_type=code`) with `redirect_uri` and `scope`, as a
    /// browser would after Webex Connect's "Generate Token". Returns the authorization code the
    /// application would receive on its redirect URI, to redeem at the token endpoint
    /// (`grant_type=authorization_code`), or the AADSTS error the sign-in page would show:
    /// 700016 unknown application, 50011 redirect URI not registered, 500011 / 650053 unknown
    /// resource or permission, 50034 unknown user, 50105 user not assigned, 65001 no consent. The
    /// checks and their sources are in the documentation of `sign_in.rs`. Recorded in
    /// [`MicrosoftSim::calls`] under [`routes::AUTHORIZE`] (status 302 or 400).
    pub fn sign_in(
        &self,
        tenant_id: &str,
        client_id: &str,
        user_object_id: &str,
        redirect_uri: &str,
        scope: &str,
    ) -> Result<String, SignInError> {
        sign_in::sign_in(&self.shared, tenant_id, client_id, user_object_id, redirect_uri, scope)
    }

    /// The object ID of the user a token the simulator issued is for (authorization code grant
    /// and its refreshes); None for app-only tokens, the device code flow and unknown tokens.
    pub fn token_user(&self, bearer: &str) -> Option<String> {
        let bearer = bearer.strip_prefix("Bearer ").or_else(|| bearer.strip_prefix("bearer ")).unwrap_or(bearer).trim();
        lock(&self.shared.directory).tokens.get(bearer).and_then(|t| t.user.clone())
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        Faults { shared: self.shared.clone() }
    }

    /// The Exchange Online organizations of the simulator's tenants (InvokeCommand state).
    pub fn exchange(&self) -> ExchangeSim {
        ExchangeSim { shared: self.shared.clone() }
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.calls.all()
    }

    /// How many requests matched route template `route` (see [`routes`]). Panics on a string
    /// that is not a route template, so a typo cannot make a "never called" assertion pass.
    pub fn count(&self, route: &str) -> usize {
        routes::assert_known(route);
        self.shared.calls.count(route)
    }

    pub fn reset_calls(&self) {
        self.shared.calls.clear();
    }

    fn with_tenant<T>(&self, tenant_id: &str, f: impl FnOnce(&Tenant) -> T) -> T {
        let directory = lock(&self.shared.directory);
        match directory.tenants.get(tenant_id) {
            Some(tenant) => f(tenant),
            None => panic!("the simulator has no tenant {tenant_id:?}"),
        }
    }

    /// Live (not deleted) applications, with their passwords including the secret text.
    pub fn applications(&self, tenant_id: &str) -> Vec<SimApplication> {
        self.with_tenant(tenant_id, |t| t.applications.iter().filter(|a| a.deleted.is_none()).cloned().collect())
    }

    /// Applications in deleted items (not yet past the 30-day retention).
    pub fn deleted_applications(&self, tenant_id: &str) -> Vec<SimApplication> {
        let now = self.shared.now();
        self.with_tenant(tenant_id, |t| {
            t.applications
                .iter()
                .filter(|a| a.deleted.is_some_and(|d| !state::retention_over(d, now)))
                .cloned()
                .collect()
        })
    }

    /// Service principals, including the two resource service principals.
    pub fn service_principals(&self, tenant_id: &str) -> Vec<SimServicePrincipal> {
        self.with_tenant(tenant_id, |t| t.service_principals.clone())
    }

    pub fn app_role_assignments(&self, tenant_id: &str) -> Vec<SimAppRoleAssignment> {
        self.with_tenant(tenant_id, |t| t.assignments.clone())
    }

    pub fn oauth2_permission_grants(&self, tenant_id: &str) -> Vec<SimOAuth2Grant> {
        self.with_tenant(tenant_id, |t| t.grants.clone())
    }

    /// Every `secretText` the simulator ever handed out (addPassword responses and
    /// [`MicrosoftSim::seed_password`]), for "no secret in logs" assertions.
    pub fn issued_secrets(&self) -> Vec<String> {
        lock(&self.shared.directory).issued_secrets.clone()
    }

    /// Every access token issued, for the same kind of assertion.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.directory).tokens.keys().cloned().collect()
    }

    /// Moves the simulated clock forward (expiry of secrets and tokens, deleted-items
    /// retention, replication lag and rate-limit windows all follow it).
    pub fn advance_clock(&self, by: Duration) {
        let mut offset = lock(&self.shared.clock_offset);
        *offset = offset.saturating_add(by);
    }

    /// The simulator's current time.
    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Checks a bearer token the simulator issued: `Some((tenant, client_id))` if it is known,
    /// unexpired and for `audience`. For other simulators (Exchange) that accept these tokens.
    pub fn validate_token(&self, bearer: &str, audience: Audience) -> Option<(String, String)> {
        let bearer = bearer.strip_prefix("Bearer ").or_else(|| bearer.strip_prefix("bearer ")).unwrap_or(bearer).trim();
        let now = self.shared.now();
        let directory = lock(&self.shared.directory);
        directory
            .tokens
            .get(bearer)
            .filter(|t| t.audience == audience && t.expires > now)
            .map(|t| (t.tenant.clone(), t.client_id.clone()))
    }

    /// Test helper: an application created "in the portal" (a day ago, so no replication lag
    /// applies), with its service principal as the portal creates one. Returns
    /// `(object ID, appId)`. The tenant is created if missing.
    pub fn seed_application(&self, tenant_id: &str, display_name: &str) -> (String, String) {
        self.add_tenant(tenant_id);
        let created = state::graph_precision(
            self.shared.now().checked_sub(jiff::SignedDuration::from_hours(24)).unwrap_or(Timestamp::UNIX_EPOCH),
        );
        let app = SimApplication {
            id: random::guid(),
            app_id: random::guid(),
            unique_name: None,
            display_name: display_name.to_string(),
            sign_in_audience: "AzureADMyOrg".to_string(),
            redirect_uris: Vec::new(),
            implicit_access_token_issuance: false,
            implicit_id_token_issuance: false,
            required_resource_access: Vec::new(),
            tags: Vec::new(),
            notes: None,
            passwords: Vec::new(),
            created,
            deleted: None,
            other_properties: serde_json::Map::new(),
            federated_credentials: Vec::new(),
        };
        let ids = (app.id.clone(), app.app_id.clone());
        let sp = SimServicePrincipal {
            id: random::guid(),
            app_id: app.app_id.clone(),
            display_name: display_name.to_string(),
            account_enabled: true,
            app_owner_organization_id: Some(tenant_id.to_string()),
            app_roles: Vec::new(),
            oauth2_permission_scopes: Vec::new(),
            tags: Vec::new(),
            created,
            app_role_assignment_required: false,
        };
        let mut directory = lock(&self.shared.directory);
        let tenant = directory.tenants.get_mut(tenant_id).expect("added above");
        tenant.applications.push(app);
        tenant.service_principals.push(sp);
        ids
    }

    /// Test helper: adds a tag to an application, as its owner would in the portal.
    pub fn tag_application(&self, tenant_id: &str, app_object_id: &str, tag: &str) {
        let mut directory = lock(&self.shared.directory);
        let tenant = directory.tenants.get_mut(tenant_id).expect("tenant exists");
        let app = tenant.applications.iter_mut().find(|a| a.id == app_object_id).expect("application exists");
        app.tags.push(tag.to_string());
    }

    /// Test helper: adds a password valid from now for `lifetime` to an application (already
    /// propagated). Returns `(keyId, secretText)`. Panics if the application does not exist.
    pub fn seed_password(
        &self,
        tenant_id: &str,
        app_object_id: &str,
        display_name: &str,
        lifetime: Duration,
    ) -> (String, String) {
        let now = self.shared.now();
        let start = state::graph_precision(now);
        let mut password =
            graph::new_password(Some(display_name.to_string()), start, add(start, lifetime), Timestamp::UNIX_EPOCH);
        password.created = Timestamp::UNIX_EPOCH;
        let result = (password.key_id.clone(), password.secret_text.clone());
        let mut directory = lock(&self.shared.directory);
        directory.issued_secrets.push(password.secret_text.clone());
        let app = directory
            .tenants
            .get_mut(tenant_id)
            .and_then(|t| {
                t.applications.iter_mut().find(|a| a.deleted.is_none() && a.id.eq_ignore_ascii_case(app_object_id))
            })
            .unwrap_or_else(|| panic!("no application {app_object_id:?} in tenant {tenant_id:?}"));
        app.passwords.push(password);
        result
    }
}

impl Drop for MicrosoftSim {
    fn drop(&mut self) {
        tracing::debug!(url = %self.url(), "stopping the Microsoft simulator");
    }
}

/// Answers one request: global latency, routing, fault injection, then the token endpoint, Graph
/// or Exchange; records the call.
async fn serve_request(shared: Arc<Shared>, request: SimRequest) -> Outcome {
    if let Some((min, max)) = shared.options.latency {
        sleep_between(min, max).await;
    }
    let routed = routes::route(&request.method, &request.path);
    let route = match &routed {
        Ok(endpoint) => endpoint.op.template().to_string(),
        Err(_) => routes::unmatched(request.method.as_str()),
    };
    let is_token = matches!(&routed, Ok(endpoint) if endpoint.op.is_login());
    let is_exchange = matches!(&routed, Ok(endpoint) if endpoint.op == Op::InvokeCommand);
    let (tenant, client_id) = match &routed {
        Ok(endpoint) if is_token => (Some(endpoint.key.clone()), token::requested_client(&request)),
        _ => shared.caller(&request).unzip(),
    };
    let cmdlet = if is_exchange { exchange::wire::requested_cmdlet(&request) } else { None };

    // A fault names a route template, a cmdlet, or one exact path (one resource of many).
    let fault_keys: Vec<&str> =
        [Some(route.as_str()), cmdlet.as_deref(), Some(request.path.as_str())].into_iter().flatten().collect();
    let triggered = lock(&shared.faults).take(&fault_keys);
    let tenant_latency =
        tenant.as_ref().and_then(|t| lock(&shared.tenant_latency).get(&t.to_ascii_lowercase()).copied());
    let latency = triggered.latency + tenant_latency.unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let now = shared.now();
    let lose_response = triggered.terminal == Some(FaultAction::LoseResponse);
    let terminal = triggered.terminal.filter(|_| !lose_response);
    let outcome = match (terminal, &routed) {
        (Some(FaultAction::Reset), _) => Outcome::Reset,
        (Some(FaultAction::Status { code, retry_after, .. }), _) => {
            let mut response = if is_token {
                AadError::for_status(code).into_response(now, &token::correlation_id(&request))
            } else if is_exchange {
                exchange::wire::fault_response(code)
            } else {
                GraphError::for_status(code, retry_after).into_response(&RequestIds::for_request(&request), now)
            };
            if let Some(seconds) = retry_after {
                response.set_header("retry-after", &seconds.to_string());
            }
            Outcome::Respond(response)
        }
        (_, Ok(endpoint)) if is_token && endpoint.op == Op::DeviceCode => {
            Outcome::Respond(token::handle_device_code(&shared, &endpoint.key, &request))
        }
        (_, Ok(endpoint)) if is_token => Outcome::Respond(token::handle(&shared, &endpoint.key, &request)),
        (_, Ok(endpoint)) if is_exchange => Outcome::Respond(exchange::wire::handle(&shared, &endpoint.key, &request)),
        (_, Ok(endpoint)) => {
            Outcome::Respond(graph::handle(&shared, endpoint, &request, &RequestIds::for_request(&request)))
        }
        (_, Err(no_route)) => {
            Outcome::Respond(GraphError::for_no_route(no_route).into_response(&RequestIds::for_request(&request), now))
        }
    };

    let status = match &outcome {
        Outcome::Respond(response) => response.status.as_u16(),
        Outcome::Reset => 0,
    };
    tracing::debug!(
        method = %request.method,
        route = %route,
        status,
        tenant = tenant.as_deref().unwrap_or(""),
        cmdlet = cmdlet.as_deref().unwrap_or(""),
        "microsoft simulator request"
    );
    let key_id = (route == routes::REMOVE_PASSWORD)
        .then(|| serde_json::from_slice::<serde_json::Value>(&request.body).ok())
        .flatten()
        .and_then(|b| b.get("keyId").and_then(|k| k.as_str()).map(str::to_string));
    shared.calls.push(CallRecord {
        method: request.method.to_string(),
        route,
        path: request.path.clone(),
        query: request.query.clone(),
        status,
        tenant,
        client_id,
        cmdlet,
        key_id,
        at: now,
    });
    if lose_response { Outcome::Reset } else { outcome }
}
