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
//! `tokenStatus` resets. All of it is decided in [`wire`] (field names in [`wire::field`]), so it
//! can be corrected in one place once the real schema is known. The operator's Connect client must
//! keep the same mapping in one module for the same reason.
//!
//! Layout: this file is the simulator's handle and request path (authentication, organization,
//! channel, then the operation); [`routes`] maps request lines to operations, `state` holds the
//! organizations and assets and applies creates and updates, and [`wire`] is the JSON.

pub mod routes;
mod state;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;
use jiff::Timestamp;

use crate::calls::{CallLog, CallRecord};
use crate::faults::{FaultAction, FaultBuilder, FaultTable, sleep_between};
use crate::random;
use crate::server::{self, Outcome, ServerHandle, SimRequest, SimResponse};
use crate::sync::lock;
use crate::tls::TestCa;
use routes::{NoRoute, Op};
use state::{IssuedToken, State};
pub use state::{SimAsset, SimOAuthConfig, SimSmtpConfig, TokenStatus};

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

struct Shared {
    options: ConnectOptions,
    state: Mutex<State>,
    faults: Arc<Mutex<FaultTable>>,
    calls: CallLog,
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
            calls: CallLog::default(),
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
        self.shared.calls.all()
    }

    /// How many requests matched route template `route`. Panics on a string that is not one.
    pub fn count(&self, route: &str) -> usize {
        routes::assert_known(route);
        self.shared.calls.count(route)
    }

    pub fn reset_calls(&self) {
        self.shared.calls.clear();
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

async fn serve_request(shared: Arc<Shared>, request: SimRequest) -> Outcome {
    if let Some((min, max)) = shared.options.latency {
        sleep_between(min, max).await;
    }
    let routed = routes::route(&request.method, &request.path);
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
    let org = request.bearer().and_then(|token| {
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
    shared.calls.push(CallRecord {
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
    let org_id = match request.bearer().and_then(|token| state.tokens.get(token)) {
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
        Op::Create => {
            let spec = wire::parse_asset(&request.body, true)?;
            let options = &shared.options;
            let asset = state.create(&org_id, spec, &options.region, &options.tenant_host, now)?;
            Ok(wire::asset_response(StatusCode::CREATED, asset))
        }
        Op::Update => {
            let asset_id = asset_id.unwrap_or_default();
            let Some(index) = state.asset_index(&org_id, asset_id) else {
                return Err(wire::ApiError::not_found(asset_id));
            };
            let spec = wire::parse_asset(&request.body, false)?;
            let asset = state.update(index, &org_id, spec, now)?;
            Ok(wire::asset_response(StatusCode::OK, asset))
        }
    }
}
