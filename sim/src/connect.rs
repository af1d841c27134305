//! A stateful simulator of the Webex Connect Digital Asset API for the email channel, on its own
//! HTTPS server on loopback.
//!
//! ```text
//!   Authorization: Bearer <personal access token> ─┐  (token → organization, see add_org)
//!   x-organization-id: <org>                       ├─▶ {url}/connectapi/v2/digital/app?channel=email
//!   trackingid: <optional, echoed>                 ┘        POST (create) · GET (list)
//!                                                           GET /{assetId} · PUT /{assetId}
//!   asset: name, mailbox, SMTP, OAuth client (secret write-only)
//!     + generated: assetId, forwarding address, callback URL, tokenStatus
//!   "Generate Token" (a person signs in) = ConnectSim::complete_sign_in
//! ```
//!
//! # Where the behaviour comes from
//! Confirmed from Webex's developer documentation: the create path and `channel=email`, bearer
//! personal access tokens (short-lived; 401 when expired), `x-organization-id`, the optional
//! `trackingid` header, the regional base URLs
//! (`https://assetmanagement.{region}.webexconnect.io/connectapi`), the error body (`code`,
//! `description`, `transid`) with statuses 400/401/403/500, and, from the Connect UI
//! documentation and public lab guides, which fields an email asset has and the forms of the
//! forwarding address (32 lowercase hex characters `@mail-<region>.imiconnect.io`) and callback URL
//! (`https://<tenant>.<region>.webexconnect.io/callback`).
//!
//! **Provisional** (the API's schema is not public in full): every JSON field name, the list
//! operation (no list is documented: [`ConnectSim::set_list_unavailable`] makes it answer 404),
//! the retrieve and update paths, the values of the error `code`, the statuses other than
//! 400/401/403/500, what PUT replaces, that the client secret is never returned, and when
//! `tokenStatus` resets. All of it is decided in the [`wire`] section of this file (field names
//! in [`wire::field`]), so it can be corrected in one place once the real schema is known. The
//! operator's Connect client must keep the same mapping in one module for the same reason.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::{Method, StatusCode};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::faults::{FaultAction, FaultBuilder, FaultTable, sleep_between};
use super::server::{self, Outcome, ServerHandle, SimRequest, SimResponse};
use super::tls::TestCa;
use super::{CallRecord, lock, random};

/// Route templates recorded in [`CallRecord::route`] and matched by [`ConnectSim::count`] and
/// [`ConnectFaults::on`].
pub mod routes {
    pub const CREATE_ASSET: &str = "POST /connectapi/v2/digital/app";
    pub const LIST_ASSETS: &str = "GET /connectapi/v2/digital/app";
    pub const GET_ASSET: &str = "GET /connectapi/v2/digital/app/{assetId}";
    pub const UPDATE_ASSET: &str = "PUT /connectapi/v2/digital/app/{assetId}";

    pub const ALL: [&str; 4] = [CREATE_ASSET, LIST_ASSETS, GET_ASSET, UPDATE_ASSET];

    /// Panics on a string that can never match (see the Microsoft simulator's `assert_known`).
    pub(crate) fn assert_known(route: &str) {
        let known = route == "*"
            || ALL.contains(&route)
            || route.strip_suffix(" <unmatched>").is_some_and(|m| !m.is_empty() && !m.contains(' '));
        assert!(known, "{route:?} is not a Connect simulator route template; use connect_email_sim::connect::routes (or \"*\")");
    }
}

/// How to start a [`ConnectSim`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Where to listen; `127.0.0.1:0` (a free port) when `None`.
    pub listen: Option<SocketAddr>,
    /// The organization's region (`us`, `eu`, `uk`, `ca`, `au`, `sg`, `in`): appears in generated
    /// forwarding addresses and callback URLs.
    pub region: String,
    /// The organization's tenant host name, the first label of the callback URL.
    pub tenant_host: String,
    /// A uniformly distributed delay in `[min, max]` added to every request.
    pub latency: Option<(Duration, Duration)>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions { listen: None, region: "us".to_string(), tenant_host: "sim-tenant".to_string(), latency: None }
    }
}

impl ConnectOptions {
    pub fn region(mut self, region: &str) -> ConnectOptions {
        self.region = region.to_string();
        self
    }

    pub fn tenant_host(mut self, tenant_host: &str) -> ConnectOptions {
        self.tenant_host = tenant_host.to_string();
        self
    }

    pub fn latency(mut self, min: Duration, max: Duration) -> ConnectOptions {
        self.latency = Some((min, max));
        self
    }

    pub fn listen(mut self, addr: SocketAddr) -> ConnectOptions {
        self.listen = Some(addr);
        self
    }
}

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

struct IssuedToken {
    org_id: String,
    expired: bool,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, IssuedToken>,
    /// The list operation answers 404 (it is not documented; a real Connect may lack it).
    list_unavailable: bool,
    assets: Vec<SimAsset>,
    pushed_secrets: Vec<String>,
}

struct Shared {
    options: ConnectOptions,
    state: Mutex<State>,
    faults: Arc<Mutex<FaultTable>>,
    calls: Mutex<Vec<CallRecord>>,
}

/// The running simulator. Dropping it stops the server.
pub struct ConnectSim {
    shared: Arc<Shared>,
    _server: ServerHandle,
    url: String,
    ca: TestCa,
}

impl std::fmt::Debug for ConnectSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSim").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Cheap, cloneable handle for injecting faults into a running [`ConnectSim`].
#[derive(Clone)]
pub struct ConnectFaults {
    table: Arc<Mutex<FaultTable>>,
}

impl std::fmt::Debug for ConnectFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectFaults").field("pending", &self.pending()).finish()
    }
}

impl ConnectFaults {
    /// Starts a fault for requests whose route template equals `route` ([`routes`]) or every
    /// request with `"*"`; once unless [`FaultBuilder::times`] says otherwise. Status faults get
    /// the API's error body. Panics on a string that is not a route template.
    pub fn on(&self, route: &str) -> FaultBuilder {
        routes::assert_known(route);
        FaultBuilder::new(self.table.clone(), route.to_string())
    }

    pub fn clear(&self) {
        lock(&self.table).clear();
    }

    /// Number of fault uses not yet consumed.
    pub fn pending(&self) -> usize {
        lock(&self.table).pending()
    }
}

impl ConnectSim {
    /// Binds 127.0.0.1:0 (or `options.listen`) and serves HTTPS.
    pub async fn start(options: ConnectOptions) -> std::io::Result<ConnectSim> {
        let ca = TestCa::generate()?;
        let listen = options.listen.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(State::default()),
            faults: Arc::new(Mutex::new(FaultTable::default())),
            calls: Mutex::new(Vec::new()),
        });
        let handler_shared = shared.clone();
        let server =
            server::serve(listen, ca.server_config(), move |request| serve_request(handler_shared.clone(), request))
                .await?;
        let url = server.url();
        Ok(ConnectSim { shared, _server: server, url, ca })
    }

    /// `https://127.0.0.1:PORT`, the stand-in for `https://assetmanagement.{region}.webexconnect.io`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `{url}/connectapi`: what Webex calls the Digital Channel Onboarding API base URL.
    pub fn base_url(&self) -> String {
        format!("{}/connectapi", self.url)
    }

    /// PEM of the test CA that issued the server certificate.
    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem().to_string()
    }

    /// Registers an organization and a valid access token for it (call again for more tokens).
    pub fn add_org(&self, org_id: &str, access_token: &str) {
        lock(&self.shared.state)
            .tokens
            .insert(access_token.to_string(), IssuedToken { org_id: org_id.to_string(), expired: false });
    }

    /// The token stops working (401 from then on), as a personal access token does when it
    /// expires (after about 12 hours).
    pub fn expire_token(&self, access_token: &str) {
        match lock(&self.shared.state).tokens.get_mut(access_token) {
            Some(token) => token.expired = true,
            None => panic!("the Connect simulator issued no such token"),
        }
    }

    /// A person generated a new personal access token: `old` expires and `new` is valid for the
    /// same organization. Panics if `old` was never issued.
    pub fn renew_token(&self, old: &str, new: &str) {
        let mut state = lock(&self.shared.state);
        let org_id = match state.tokens.get_mut(old) {
            Some(token) => {
                token.expired = true;
                token.org_id.clone()
            }
            None => panic!("the Connect simulator issued no such token"),
        };
        state.tokens.insert(new.to_string(), IssuedToken { org_id, expired: false });
    }

    /// Fault switch: while on, the list operation (`GET …/v2/digital/app?channel=email`, which
    /// Webex does not document) answers 404 as for a path that does not exist; retrieve, create
    /// and update keep working.
    pub fn set_list_unavailable(&self, unavailable: bool) {
        lock(&self.shared.state).list_unavailable = unavailable;
    }

    pub fn faults(&self) -> ConnectFaults {
        ConnectFaults { table: self.shared.faults.clone() }
    }

    /// Every request so far, in arrival order; `tenant` is the organization of the token.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.shared.calls).clone()
    }

    /// How many requests matched route template `route`. Panics on a string that is not one.
    pub fn count(&self, route: &str) -> usize {
        routes::assert_known(route);
        lock(&self.shared.calls).iter().filter(|c| c.route == route).count()
    }

    pub fn reset_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    /// Test helper for the interactive step: a person clicked "Generate Token" and signed in, so
    /// Connect now holds tokens for the asset. Panics on an unknown asset.
    pub fn complete_sign_in(&self, asset_id: &str) {
        let mut state = lock(&self.shared.state);
        let asset = state
            .assets
            .iter_mut()
            .find(|a| a.asset_id == asset_id)
            .unwrap_or_else(|| panic!("the Connect simulator has no asset {asset_id:?}"));
        asset.token_status = TokenStatus::Generated;
    }

    /// The asset as the simulator holds it, including the last client secret pushed.
    pub fn asset(&self, asset_id: &str) -> Option<SimAsset> {
        lock(&self.shared.state).assets.iter().find(|a| a.asset_id == asset_id).cloned()
    }

    /// The organization's assets, in creation order.
    pub fn assets(&self, org_id: &str) -> Vec<SimAsset> {
        lock(&self.shared.state).assets.iter().filter(|a| a.org_id == org_id).cloned().collect()
    }

    /// Every client secret a successful create or update carried, in order (for "what was
    /// pushed" and "no secret in logs" assertions).
    pub fn pushed_secrets(&self) -> Vec<String> {
        lock(&self.shared.state).pushed_secrets.clone()
    }
}

impl Drop for ConnectSim {
    fn drop(&mut self) {
        tracing::debug!(url = %self.url, "stopping the Connect simulator");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    List,
    Get,
    Update,
}

impl Op {
    fn template(self) -> &'static str {
        match self {
            Op::Create => routes::CREATE_ASSET,
            Op::List => routes::LIST_ASSETS,
            Op::Get => routes::GET_ASSET,
            Op::Update => routes::UPDATE_ASSET,
        }
    }
}

/// Why a request matched no route.
#[derive(Debug, PartialEq, Eq)]
enum NoRoute {
    MethodNotAllowed,
    NotFound,
}

fn route(method: &Method, path: &str) -> Result<(Op, Option<String>), NoRoute> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["connectapi", "v2", "digital", "app"] => match *method {
            Method::POST => Ok((Op::Create, None)),
            Method::GET => Ok((Op::List, None)),
            _ => Err(NoRoute::MethodNotAllowed),
        },
        ["connectapi", "v2", "digital", "app", id] if !id.is_empty() => match *method {
            Method::GET => Ok((Op::Get, Some((*id).to_string()))),
            Method::PUT => Ok((Op::Update, Some((*id).to_string()))),
            _ => Err(NoRoute::MethodNotAllowed),
        },
        _ => Err(NoRoute::NotFound),
    }
}

async fn serve_request(shared: Arc<Shared>, request: SimRequest) -> Outcome {
    if let Some((min, max)) = shared.options.latency {
        sleep_between(min, max).await;
    }
    let routed = route(&request.method, &request.path);
    let route = match &routed {
        Ok((op, _)) => op.template().to_string(),
        Err(_) => format!("{} <unmatched>", request.method),
    };
    // Recorded under its route template (so tests can count the attempts), answered as a path
    // that does not exist.
    let routed = match routed {
        Ok((Op::List, _)) if lock(&shared.state).list_unavailable => Err(NoRoute::NotFound),
        other => other,
    };
    let tracking_id =
        request.header("trackingid").map(str::to_string).unwrap_or_else(|| format!("SIM_{}", random::guid()));
    let org = wire::bearer(&request).and_then(|token| {
        let state = lock(&shared.state);
        state.tokens.get(token).map(|t| t.org_id.clone())
    });

    let triggered = lock(&shared.faults).take(&[&route]);
    if !triggered.latency.is_zero() {
        tokio::time::sleep(triggered.latency).await;
    }
    let outcome = match (triggered.terminal, routed) {
        (Some(FaultAction::Reset), _) => Outcome::Reset,
        (Some(FaultAction::Status { code, retry_after }), _) => {
            let mut response = wire::ApiError::fault(code).render(&tracking_id);
            if let Some(seconds) = retry_after {
                response.set_header("retry-after", &seconds.to_string());
            }
            Outcome::Respond(response)
        }
        (_, Ok((op, id))) => Outcome::Respond(
            handle(&shared, op, id.as_deref(), &request)
                .unwrap_or_else(|error| error.render(&tracking_id))
                .with_header("trackingid", &tracking_id),
        ),
        (_, Err(NoRoute::MethodNotAllowed)) => Outcome::Respond(
            wire::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.").render(&tracking_id),
        ),
        (_, Err(NoRoute::NotFound)) => {
            Outcome::Respond(wire::ApiError::new(StatusCode::NOT_FOUND, "Resource not found.").render(&tracking_id))
        }
    };
    let status = match &outcome {
        Outcome::Respond(response) => response.status.as_u16(),
        Outcome::Reset => 0,
    };
    tracing::debug!(method = %request.method, route = %route, status, "connect simulator request");
    lock(&shared.calls).push(CallRecord {
        method: request.method.to_string(),
        route,
        path: request.path.clone(),
        query: request.query.clone(),
        status,
        tenant: org,
        client_id: None,
        cmdlet: None,
        key_id: None,
        at: Timestamp::now(),
    });
    outcome
}

/// Authentication, organization, channel; then the operation.
fn handle(
    shared: &Shared,
    op: Op,
    asset_id: Option<&str>,
    request: &SimRequest,
) -> Result<SimResponse, wire::ApiError> {
    let mut state = lock(&shared.state);
    let org_id = match wire::bearer(request).and_then(|token| state.tokens.get(token)) {
        Some(token) if !token.expired => token.org_id.clone(),
        _ => return Err(wire::ApiError::unauthorized()),
    };
    match request.header("x-organization-id").map(str::trim) {
        None | Some("") => {
            return Err(wire::ApiError::new(StatusCode::BAD_REQUEST, "Missing x-organization-id header."));
        }
        Some(requested) if requested != org_id => return Err(wire::ApiError::forbidden(requested)),
        Some(_) => {}
    }
    wire::check_channel(request.query.as_deref())?;
    let now = Timestamp::now();
    match op {
        Op::List => {
            let assets: Vec<&SimAsset> = state.assets.iter().filter(|a| a.org_id == org_id).collect();
            Ok(wire::list(&assets))
        }
        Op::Get => match state.assets.iter().find(|a| Some(a.asset_id.as_str()) == asset_id && a.org_id == org_id) {
            Some(asset) => Ok(wire::asset_response(StatusCode::OK, asset)),
            None => Err(wire::ApiError::not_found(asset_id.unwrap_or_default())),
        },
        Op::Create => create(&mut state, &shared.options, &org_id, &request.body, now),
        Op::Update => update(&mut state, &org_id, asset_id.unwrap_or_default(), &request.body, now),
    }
}

fn name_taken(state: &State, org_id: &str, name: &str, except: Option<&str>) -> bool {
    state
        .assets
        .iter()
        .any(|a| a.org_id == org_id && a.asset_name.eq_ignore_ascii_case(name) && Some(a.asset_id.as_str()) != except)
}

fn create(
    state: &mut State,
    options: &ConnectOptions,
    org_id: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<SimResponse, wire::ApiError> {
    let spec = wire::parse_asset(body, true)?;
    if name_taken(state, org_id, &spec.asset_name, None) {
        return Err(wire::ApiError::duplicate_name(&spec.asset_name));
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
        forwarding_address: format!(
            "{}@mail-{}.imiconnect.io",
            random::string_from(b"0123456789abcdef", 32),
            options.region
        ),
        callback_url: format!("https://{}.{}.webexconnect.io/callback", options.tenant_host, options.region),
        token_status: TokenStatus::NotGenerated,
        secret_updated_at: None,
        created_at: now,
        updated_at: now,
    };
    let response = wire::asset_response(StatusCode::CREATED, &asset);
    state.pushed_secrets.push(secret);
    state.assets.push(asset);
    Ok(response)
}

/// PUT replaces every writable field; a request without a client secret keeps the current one
/// (GET never returns it, so a read-modify-write client cannot send it back). Provisional:
/// changing the OAuth client (ID, URLs, scope) invalidates Connect's tokens; changing only the
/// secret keeps them and records `secretUpdatedAt`.
fn update(
    state: &mut State,
    org_id: &str,
    asset_id: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<SimResponse, wire::ApiError> {
    let Some(index) = state.assets.iter().position(|a| a.asset_id == asset_id && a.org_id == org_id) else {
        return Err(wire::ApiError::not_found(asset_id));
    };
    let spec = wire::parse_asset(body, false)?;
    if name_taken(state, org_id, &spec.asset_name, Some(asset_id)) {
        return Err(wire::ApiError::duplicate_name(&spec.asset_name));
    }
    let asset = &mut state.assets[index];
    let client_changed = asset.oauth.client_id != spec.oauth.client_id
        || asset.oauth.authorization_url != spec.oauth.authorization_url
        || asset.oauth.token_url != spec.oauth.token_url
        || asset.oauth.scope != spec.oauth.scope;
    if client_changed {
        asset.token_status = TokenStatus::NotGenerated;
    }
    if let Some(secret) = &spec.oauth.client_secret
        && *secret != asset.oauth.client_secret
    {
        asset.oauth.client_secret = secret.clone();
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
    let response = wire::asset_response(StatusCode::OK, asset);
    if let Some(secret) = spec.oauth.client_secret {
        state.pushed_secrets.push(secret);
    }
    Ok(response)
}

/// The provisional wire mapping of the Digital Asset API: every JSON name, body shape and error
/// format the simulator uses is decided here.
pub mod wire {
    use super::*;

    /// JSON field names of an email asset (provisional).
    pub mod field {
        pub const ASSET_ID: &str = "assetId";
        pub const ASSET_NAME: &str = "assetName";
        pub const CHANNEL: &str = "channel";
        pub const EMAIL_ID: &str = "emailId";
        pub const REGISTER_TO_WEBEX_ENGAGE: &str = "registerToWebexEngage";
        pub const AUTH_TYPE: &str = "authType";
        pub const SMTP: &str = "smtp";
        pub const SMTP_SERVER: &str = "server";
        pub const SMTP_PORT: &str = "port";
        pub const SMTP_SECURITY: &str = "security";
        pub const SMTP_USERNAME: &str = "username";
        pub const OAUTH: &str = "oauth";
        pub const CLIENT_ID: &str = "clientId";
        /// Write-only: accepted in POST/PUT, never returned.
        pub const CLIENT_SECRET: &str = "clientSecret";
        pub const AUTHORIZATION_URL: &str = "authorizationUrl";
        pub const TOKEN_URL: &str = "tokenUrl";
        pub const SCOPE: &str = "scope";
        pub const FORWARDING_ADDRESS: &str = "forwardingAddress";
        pub const CALLBACK_URL: &str = "callbackUrl";
        pub const TOKEN_STATUS: &str = "tokenStatus";
        pub const SECRET_UPDATED_AT: &str = "secretUpdatedAt";
        pub const CREATED_AT: &str = "createdAt";
        pub const UPDATED_AT: &str = "updatedAt";
        /// The list response's array.
        pub const ASSETS: &str = "assets";
    }

    /// The only auth type the simulator accepts.
    pub const AUTH_TYPE_OAUTH2: &str = "OAUTH2";
    pub const SECURITY_VALUES: [&str; 3] = ["STARTTLS", "SSL", "NONE"];
    const JSON: &str = "application/json";

    impl TokenStatus {
        pub fn as_str(self) -> &'static str {
            match self {
                TokenStatus::NotGenerated => "NOT_GENERATED",
                TokenStatus::Generated => "GENERATED",
            }
        }
    }

    pub(super) fn bearer(request: &SimRequest) -> Option<&str> {
        let (scheme, token) = request.header("authorization")?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
    }

    /// `channel=email` is required (the same paths serve other channels in the real API).
    pub(super) fn check_channel(query: Option<&str>) -> Result<(), ApiError> {
        let channel = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "channel").map(|(_, v)| v.into_owned()))
            .unwrap_or_default();
        match channel.as_deref() {
            Some("email") => Ok(()),
            Some(other) => Err(ApiError::invalid(
                "channel",
                &format!("Channel '{other}' is not supported by this simulator; use channel=email."),
            )),
            None => Err(ApiError::invalid("channel", "The channel query parameter is required.")),
        }
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

    type FieldResult<T> = Result<T, ApiError>;

    fn invalid(field: &str, description: &str) -> ApiError {
        ApiError::invalid(field, description)
    }

    fn text(object: &Map<String, Value>, name: &str, path: &str) -> FieldResult<String> {
        match object.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) | None | Some(Value::Null) => Err(invalid(path, &format!("{path} is required."))),
            Some(_) => Err(invalid(path, &format!("{path} must be a string."))),
        }
    }

    fn https_url(object: &Map<String, Value>, name: &str, path: &str) -> FieldResult<String> {
        let value = text(object, name, path)?;
        match url::Url::parse(&value) {
            Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(value),
            _ => Err(invalid(path, &format!("{path} must be an https URL."))),
        }
    }

    fn email(value: &str) -> bool {
        value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@') && !value.contains(char::is_whitespace)
        })
    }

    fn object<'a>(parent: &'a Map<String, Value>, name: &str) -> FieldResult<&'a Map<String, Value>> {
        match parent.get(name) {
            Some(Value::Object(object)) => Ok(object),
            None | Some(Value::Null) => Err(invalid(name, &format!("{name} is required."))),
            Some(_) => Err(invalid(name, &format!("{name} must be an object."))),
        }
    }

    /// Validates a POST (`creating`: the client secret is required) or PUT body. The first
    /// problem is reported, naming the field by its JSON path.
    pub(super) fn parse_asset(body: &[u8], creating: bool) -> FieldResult<AssetSpec> {
        use field::*;
        let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "The request body must be a JSON object."));
        };
        let asset_name = text(&root, ASSET_NAME, ASSET_NAME)?;
        let email_id = text(&root, EMAIL_ID, EMAIL_ID)?;
        if !email(&email_id) {
            return Err(invalid(EMAIL_ID, "emailId must be an email address."));
        }
        let register_to_webex_engage = match root.get(REGISTER_TO_WEBEX_ENGAGE) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid(REGISTER_TO_WEBEX_ENGAGE, "registerToWebexEngage must be a boolean.")),
        };
        let auth_type = text(&root, AUTH_TYPE, AUTH_TYPE)?;
        if auth_type != AUTH_TYPE_OAUTH2 {
            return Err(invalid(AUTH_TYPE, &format!("authType must be {AUTH_TYPE_OAUTH2}.")));
        }

        let smtp = object(&root, SMTP)?;
        let path = |name: &str| format!("{SMTP}.{name}");
        let server = text(smtp, SMTP_SERVER, &path(SMTP_SERVER))?;
        let port = match smtp.get(SMTP_PORT).and_then(Value::as_u64) {
            Some(port @ 1..=65535) => port as u16,
            _ => return Err(invalid(&path(SMTP_PORT), "smtp.port must be an integer between 1 and 65535.")),
        };
        let security = text(smtp, SMTP_SECURITY, &path(SMTP_SECURITY))?;
        if !SECURITY_VALUES.contains(&security.as_str()) {
            let allowed = SECURITY_VALUES.join(", ");
            return Err(invalid(&path(SMTP_SECURITY), &format!("smtp.security must be one of {allowed}.")));
        }
        let username = text(smtp, SMTP_USERNAME, &path(SMTP_USERNAME))?;

        let oauth = object(&root, OAUTH)?;
        let path = |name: &str| format!("{OAUTH}.{name}");
        let client_id = text(oauth, CLIENT_ID, &path(CLIENT_ID))?;
        let client_secret = match oauth.get(CLIENT_SECRET) {
            None | Some(Value::Null) if !creating => None,
            _ => Some(text(oauth, CLIENT_SECRET, &path(CLIENT_SECRET))?),
        };
        let authorization_url = https_url(oauth, AUTHORIZATION_URL, &path(AUTHORIZATION_URL))?;
        let token_url = https_url(oauth, TOKEN_URL, &path(TOKEN_URL))?;
        let scope = text(oauth, SCOPE, &path(SCOPE))?;
        Ok(AssetSpec {
            asset_name,
            email_id,
            register_to_webex_engage,
            auth_type,
            smtp: SimSmtpConfig { server, port, security, username },
            oauth: OAuthSpec { client_id, client_secret, authorization_url, token_url, scope },
        })
    }

    /// An asset as the API returns it: never the client secret.
    pub fn asset_json(asset: &SimAsset) -> Value {
        use field::*;
        json!({
            ASSET_ID: asset.asset_id,
            ASSET_NAME: asset.asset_name,
            CHANNEL: "email",
            EMAIL_ID: asset.email_id,
            REGISTER_TO_WEBEX_ENGAGE: asset.register_to_webex_engage,
            AUTH_TYPE: asset.auth_type,
            SMTP: {
                SMTP_SERVER: asset.smtp.server,
                SMTP_PORT: asset.smtp.port,
                SMTP_SECURITY: asset.smtp.security,
                SMTP_USERNAME: asset.smtp.username,
            },
            OAUTH: {
                CLIENT_ID: asset.oauth.client_id,
                AUTHORIZATION_URL: asset.oauth.authorization_url,
                TOKEN_URL: asset.oauth.token_url,
                SCOPE: asset.oauth.scope,
            },
            FORWARDING_ADDRESS: asset.forwarding_address,
            CALLBACK_URL: asset.callback_url,
            TOKEN_STATUS: asset.token_status.as_str(),
            SECRET_UPDATED_AT: asset.secret_updated_at.map(|t| t.to_string()),
            CREATED_AT: asset.created_at.to_string(),
            UPDATED_AT: asset.updated_at.to_string(),
        })
    }

    pub(super) fn asset_response(status: StatusCode, asset: &SimAsset) -> SimResponse {
        SimResponse::json(status, &asset_json(asset), JSON)
    }

    pub(super) fn list(assets: &[&SimAsset]) -> SimResponse {
        let body = json!({ field::ASSETS: assets.iter().map(|a| asset_json(a)).collect::<Vec<_>>() });
        SimResponse::json(StatusCode::OK, &body, JSON)
    }

    /// An error answer in the documented shape (developer.webex.com, "Status and Error
    /// Codes"): `code`, `description`, `transid`; the `trackingid` request header is echoed.
    /// Provisional: the values of `code` (no list is public; these name the problem), statuses
    /// other than 200/400/401/403/500, and that a field problem names the field by its JSON path
    /// inside `description`.
    #[derive(Debug)]
    pub(super) struct ApiError {
        status: StatusCode,
        code: &'static str,
        description: String,
    }

    impl ApiError {
        pub fn new(status: StatusCode, description: &str) -> ApiError {
            let code = match status.as_u16() {
                400 => "INVALID_REQUEST",
                401 => "UNAUTHORIZED",
                403 => "FORBIDDEN",
                404 => "NOT_FOUND",
                405 => "METHOD_NOT_ALLOWED",
                409 => "CONFLICT",
                429 => "TOO_MANY_REQUESTS",
                503 => "SERVICE_UNAVAILABLE",
                _ => "INTERNAL_ERROR",
            };
            ApiError { status, code, description: description.to_string() }
        }

        /// 400 naming the field by its JSON path (`smtp.port`) in the description.
        pub fn invalid(field: &str, description: &str) -> ApiError {
            let description =
                if description.contains(field) { description.to_string() } else { format!("{field}: {description}") };
            ApiError::new(StatusCode::BAD_REQUEST, &description)
        }

        /// The Webex platform's text for a missing, invalid or expired token.
        pub fn unauthorized() -> ApiError {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "The request requires a valid access token set in the Authorization request header.",
            )
        }

        pub fn forbidden(org_id: &str) -> ApiError {
            let description = format!("The access token does not grant access to organization '{org_id}'.");
            ApiError::new(StatusCode::FORBIDDEN, &description)
        }

        pub fn not_found(asset_id: &str) -> ApiError {
            ApiError::new(StatusCode::NOT_FOUND, &format!("Asset '{asset_id}' not found."))
        }

        pub fn duplicate_name(name: &str) -> ApiError {
            let description = format!("assetName: an asset named '{name}' already exists in this organization.");
            ApiError::new(StatusCode::CONFLICT, &description)
        }

        /// Injected 429/503/…: the status's reason phrase as the description.
        pub fn fault(status: u16) -> ApiError {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            ApiError::new(status, &format!("{}.", status.canonical_reason().unwrap_or("Error")))
        }

        pub fn render(&self, tracking_id: &str) -> SimResponse {
            let body = json!({"code": self.code, "description": self.description, "transid": random::guid()});
            SimResponse::json(self.status, &body, JSON).with_header("trackingid", tracking_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_asset_paths() {
        assert_eq!(route(&Method::POST, "/connectapi/v2/digital/app"), Ok((Op::Create, None)));
        assert_eq!(route(&Method::GET, "/connectapi/v2/digital/app/"), Ok((Op::List, None)));
        assert_eq!(route(&Method::PUT, "/connectapi/v2/digital/app/a1"), Ok((Op::Update, Some("a1".into()))));
        assert_eq!(route(&Method::DELETE, "/connectapi/v2/digital/app/a1"), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::GET, "/v2/digital/app"), Err(NoRoute::NotFound));
    }

    #[test]
    fn the_channel_must_be_email() {
        assert!(wire::check_channel(Some("channel=email")).is_ok());
        assert!(wire::check_channel(Some("x=1&channel=email")).is_ok());
        assert!(wire::check_channel(Some("channel=app")).is_err());
        assert!(wire::check_channel(None).is_err());
    }

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
