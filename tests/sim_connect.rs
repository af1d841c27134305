//! The Webex Connect Digital Asset API simulator (email channel) over real HTTPS: asset create,
//! list, retrieve and update with the provisional field mapping, generated addresses, the
//! write-only client secret, the sign-in status, validation and auth errors, and faults.

mod support;

use std::time::{Duration, Instant};

use connect_email_operator::api::email_channel::ConnectRegion;
use connect_email_operator::connect::api::{AssetSettings, ConnectAssets, ConnectClient, ConnectError, Org};
use connect_email_operator::http::RetryPolicy;
use connect_email_sim::connect::routes;
use connect_email_sim::{ConnectOptions, ConnectSim, TokenStatus};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::sim_client::{self, MAILBOX, Reply, TENANT, https_client};

const ORG: &str = "org-7f1c";
const TOKEN: &str = "personal-access-token-1";
const OTHER_ORG: &str = "org-0a2b";
const OTHER_TOKEN: &str = "personal-access-token-2";

/// A started simulator (region `eu`, tenant host `acme`) with two organizations.
struct Connect {
    sim: ConnectSim,
    http: reqwest::Client,
}

/// Connect's answers and error body.
impl Reply {
    fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected reply: {self:?}");
        &self.body
    }

    fn asset_id(&self) -> String {
        self.body["assetId"].as_str().expect("assetId").to_string()
    }

    /// Asserts Connect's documented error body (`code`, `description`, `transid`, nothing else)
    /// and the echoed `trackingid` header, and returns the description.
    fn error(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "unexpected reply: {self:?}");
        let object = self.body.as_object().expect("a JSON object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "description", "transid"], "{self:?}");
        assert!(self.body["code"].as_str().is_some_and(|c| !c.is_empty()), "{self:?}");
        assert!(self.body["transid"].as_str().is_some_and(|t| !t.is_empty()), "{self:?}");
        assert!(self.header("trackingid").is_some_and(|t| !t.is_empty()), "{self:?}");
        self.body["description"].as_str().filter(|d| !d.is_empty()).expect("a description")
    }

    /// Asserts a 400 whose description names `field`.
    fn invalid(&self, field: &str) {
        let description = self.error(400);
        assert!(description.contains(field), "{field}: {description}");
    }
}

/// An email asset body, as the operator would build it.
#[derive(Clone)]
struct Asset(Value);

impl Asset {
    fn for_mailbox(mailbox: &str) -> Asset {
        Asset(json!({
            "assetName": "Support mailbox",
            "emailId": mailbox,
            "registerToWebexEngage": false,
            "authType": "OAUTH2",
            "smtp": {"server": "smtp.office365.com", "port": 587, "security": "STARTTLS", "username": mailbox},
            "oauth": {
                "clientId": "11111111-2222-4333-8444-555555555555",
                "clientSecret": "first~secret~value",
                "authorizationUrl": format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize"),
                "tokenUrl": format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
                "scope": "offline_access https://outlook.office.com/SMTP.Send",
            },
        }))
    }

    fn named(self, name: &str) -> Asset {
        self.set("/assetName", json!(name))
    }

    fn with_secret(self, secret: &str) -> Asset {
        self.set("/oauth/clientSecret", json!(secret))
    }

    fn without(mut self, pointer: &str) -> Asset {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() { Some(&mut self.0) } else { self.0.pointer_mut(parent) };
        target.unwrap().as_object_mut().unwrap().remove(key);
        self
    }

    fn set(mut self, pointer: &str, value: Value) -> Asset {
        *self.0.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer}")) = value;
        self
    }
}

/// One request being described: the operator's credentials unless changed.
struct Call<'a> {
    connect: &'a Connect,
    method: Method,
    path: String,
    query: &'static str,
    token: Option<&'static str>,
    org: Option<&'static str>,
    tracking_id: Option<&'static str>,
    body: Option<Value>,
}

impl Call<'_> {
    fn token(mut self, token: Option<&'static str>) -> Self {
        self.token = token;
        self
    }

    fn org(mut self, org: Option<&'static str>) -> Self {
        self.org = org;
        self
    }

    fn query(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }

    fn tracking_id(mut self, tracking_id: &'static str) -> Self {
        self.tracking_id = Some(tracking_id);
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    async fn try_send(self) -> reqwest::Result<reqwest::Response> {
        let url = format!("{}{}{}", self.connect.sim.base_url(), self.path, self.query);
        let mut request = self.connect.http.request(self.method, url);
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        if let Some(org) = self.org {
            request = request.header("x-organization-id", org);
        }
        if let Some(tracking_id) = self.tracking_id {
            request = request.header("trackingid", tracking_id);
        }
        if let Some(body) = &self.body {
            request = request.json(body);
        }
        request.send().await
    }

    async fn send(self) -> Reply {
        Reply::read(self.try_send().await.unwrap()).await
    }
}

impl Connect {
    async fn start() -> Connect {
        Connect::with(ConnectOptions::default().region("eu").tenant_host("acme")).await
    }

    async fn with(options: ConnectOptions) -> Connect {
        let sim = ConnectSim::start(options).await.unwrap();
        sim.add_org(ORG, TOKEN);
        sim.add_org(OTHER_ORG, OTHER_TOKEN);
        let http = https_client(&sim.ca_pem());
        Connect { sim, http }
    }

    fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            connect: self,
            method,
            path: path.to_string(),
            query: "?channel=email",
            token: Some(TOKEN),
            org: Some(ORG),
            tracking_id: None,
            body: None,
        }
    }

    fn create(&self, asset: &Asset) -> Call<'_> {
        self.call(Method::POST, "/v2/digital/app").body(asset.0.clone())
    }

    fn list(&self) -> Call<'_> {
        self.call(Method::GET, "/v2/digital/app")
    }

    fn get(&self, asset_id: &str) -> Call<'_> {
        self.call(Method::GET, &format!("/v2/digital/app/{asset_id}"))
    }

    fn update(&self, asset_id: &str, asset: &Asset) -> Call<'_> {
        self.call(Method::PUT, &format!("/v2/digital/app/{asset_id}")).body(asset.0.clone())
    }

    /// Creates the default asset and returns its ID.
    async fn created(&self) -> String {
        self.create(&Asset::for_mailbox(MAILBOX)).send().await.ok(201);
        self.sim.assets(ORG).last().unwrap().asset_id.clone()
    }
}

/// The operator's Connect client against the simulator (2 attempts, 10 ms backoff).
fn client(connect: &Connect) -> ConnectClient {
    let retry =
        RetryPolicy { max_attempts: 2, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(50) };
    sim_client::connect_client(&connect.sim, Some(retry))
}

fn org(token: &SecretString) -> Org<'_> {
    Org { region: ConnectRegion::Eu, organization_id: ORG, token }
}

fn settings(name: &str) -> AssetSettings {
    sim_client::asset_settings(name, MAILBOX, TENANT, "client~secret")
}

fn is_hex(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

// ---------------------------------------------------------------------------------------------
// Create, read, update

#[tokio::test]
async fn creating_an_asset_generates_its_forwarding_address_and_callback_url() {
    let connect = Connect::start().await;
    let reply = connect.create(&Asset::for_mailbox(MAILBOX)).send().await;
    let asset = reply.ok(201);

    let forwarding = asset["forwardingAddress"].as_str().unwrap();
    let (local, domain) = forwarding.split_once('@').unwrap();
    assert!(local.len() == 32 && is_hex(local), "32 lowercase hex characters: {forwarding}");
    assert_eq!(domain, "mail-eu.imiconnect.io");
    assert_eq!(asset["callbackUrl"], "https://acme.eu.webexconnect.io/callback");
    assert_eq!(asset["tokenStatus"], "NOT_GENERATED");
    assert_eq!(asset["secretUpdatedAt"], Value::Null);
    assert_eq!((asset["emailId"].as_str(), asset["authType"].as_str()), (Some(MAILBOX), Some("OAUTH2")));
    assert_eq!(
        asset["smtp"],
        json!({"server": "smtp.office365.com", "port": 587, "security": "STARTTLS", "username": MAILBOX})
    );
    assert_eq!(asset["oauth"]["scope"], "offline_access https://outlook.office.com/SMTP.Send");

    let held = connect.sim.asset(&reply.asset_id()).unwrap();
    assert_eq!((held.org_id.as_str(), held.forwarding_address.as_str()), (ORG, forwarding));
    assert_eq!(held.token_status, TokenStatus::NotGenerated);
    assert_eq!(connect.get(&reply.asset_id()).send().await.ok(200), asset, "GET returns what create returned");

    let second = connect.create(&Asset::for_mailbox("sales@contoso.com").named("Sales")).send().await;
    assert_ne!(second.ok(201)["forwardingAddress"], asset["forwardingAddress"], "each asset gets its own");
}

#[tokio::test]
async fn the_client_secret_is_write_only() {
    let connect = Connect::start().await;
    let created = connect.create(&Asset::for_mailbox(MAILBOX)).send().await;
    let id = created.asset_id();
    let read = connect.get(&id).send().await;
    let listed = connect.list().send().await;
    for reply in [&created, &read, &listed] {
        assert!(!reply.text.contains("first~secret~value"), "secret leaked: {}", reply.text);
        assert!(!reply.text.contains("clientSecret"), "{}", reply.text);
    }
    assert_eq!(connect.sim.asset(&id).unwrap().oauth.client_secret, "first~secret~value");
    assert_eq!(connect.sim.pushed_secrets(), ["first~secret~value"]);
    assert!(!format!("{:?}", connect.sim.asset(&id).unwrap()).contains("first~secret~value"));
}

#[tokio::test]
async fn a_sign_in_generates_tokens_and_a_rotated_secret_keeps_them() {
    let connect = Connect::start().await;
    let id = connect.created().await;
    connect.sim.complete_sign_in(&id);
    assert_eq!(connect.get(&id).send().await.ok(200)["tokenStatus"], "GENERATED");

    let rotated = Asset::for_mailbox(MAILBOX).with_secret("second~secret~value");
    let reply = connect.update(&id, &rotated).send().await;
    let asset = reply.ok(200);
    assert_eq!(asset["tokenStatus"], "GENERATED", "a new secret keeps Connect's tokens");
    let updated_at = asset["secretUpdatedAt"].as_str().expect("secretUpdatedAt").to_string();
    assert_eq!(connect.sim.asset(&id).unwrap().oauth.client_secret, "second~secret~value");
    assert_eq!(connect.sim.pushed_secrets(), ["first~secret~value", "second~secret~value"]);

    // Read-modify-write without the secret (GET never returns it) keeps it.
    let renamed = Asset::for_mailbox(MAILBOX).named("Support (renamed)").without("/oauth/clientSecret");
    let asset = connect.update(&id, &renamed).send().await;
    assert_eq!(asset.ok(200)["assetName"], "Support (renamed)");
    assert_eq!(asset.body["secretUpdatedAt"], updated_at.as_str());
    assert_eq!(connect.sim.asset(&id).unwrap().oauth.client_secret, "second~secret~value");
    assert_eq!(connect.sim.pushed_secrets().len(), 2);

    let new_client = Asset::for_mailbox(MAILBOX).set("/oauth/clientId", json!("99999999-2222-4333-8444-555555555555"));
    let asset = connect.update(&id, &new_client).send().await;
    assert_eq!(asset.ok(200)["tokenStatus"], "NOT_GENERATED", "another OAuth client needs a new sign-in");
}

#[tokio::test]
async fn list_and_retrieve_see_only_the_callers_organization() {
    let connect = Connect::start().await;
    let ours = connect.created().await;
    let theirs =
        connect.create(&Asset::for_mailbox(MAILBOX)).token(Some(OTHER_TOKEN)).org(Some(OTHER_ORG)).send().await;
    theirs.ok(201);

    let listed = connect.list().send().await;
    let ids: Vec<&str> =
        listed.ok(200)["assets"].as_array().unwrap().iter().map(|a| a["assetId"].as_str().unwrap()).collect();
    assert_eq!(ids, [ours.as_str()]);
    connect.get(&theirs.asset_id()).send().await.error(404);
    connect.update(&theirs.asset_id(), &Asset::for_mailbox(MAILBOX)).send().await.error(404);
    connect.get("no-such-asset").send().await.error(404);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn asset_names_are_unique_within_an_organization() {
    let connect = Connect::start().await;
    connect.created().await;
    let duplicate = connect.create(&Asset::for_mailbox("other@contoso.com").named("SUPPORT MAILBOX")).send().await;
    assert!(duplicate.error(409).contains("assetName"), "{duplicate:?}");

    let sales = connect.create(&Asset::for_mailbox("sales@contoso.com").named("Sales")).send().await.asset_id();
    connect.update(&sales, &Asset::for_mailbox("sales@contoso.com")).send().await.error(409);
    let elsewhere =
        connect.create(&Asset::for_mailbox(MAILBOX)).token(Some(OTHER_TOKEN)).org(Some(OTHER_ORG)).send().await;
    elsewhere.ok(201);
    assert_eq!(connect.sim.pushed_secrets().len(), 3, "refused requests push nothing");
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let connect = Connect::start().await;
    let asset = || Asset::for_mailbox(MAILBOX);
    let cases = [
        (asset().without("/emailId"), "emailId"),
        (asset().set("/emailId", json!("not-an-address")), "emailId"),
        (asset().without("/assetName"), "assetName"),
        (asset().set("/authType", json!("BASIC")), "authType"),
        (asset().set("/smtp/port", json!(0)), "smtp.port"),
        (asset().set("/smtp/port", json!(70000)), "smtp.port"),
        (asset().set("/smtp/port", json!("587")), "smtp.port"),
        (asset().set("/smtp/security", json!("TLS")), "smtp.security"),
        (asset().without("/smtp"), "smtp"),
        (asset().without("/oauth/clientSecret"), "oauth.clientSecret"),
        (
            asset().set("/oauth/tokenUrl", json!("http://login.microsoftonline.com/t/oauth2/v2.0/token")),
            "oauth.tokenUrl",
        ),
        (asset().set("/registerToWebexEngage", json!("yes")), "registerToWebexEngage"),
    ];
    for (body, field) in cases {
        connect.create(&body).send().await.invalid(field);
    }
    connect.create(&asset()).query("").send().await.invalid("channel");
    connect.create(&asset()).query("?channel=sms").send().await.invalid("channel");
    assert!(connect.sim.assets(ORG).is_empty());
}

#[tokio::test]
async fn requests_need_a_valid_token_of_the_named_organization() {
    let connect = Connect::start().await;
    connect.list().token(None).send().await.error(401);
    connect.list().token(Some("made-up")).send().await.error(401);
    connect.list().org(None).send().await.error(400);
    connect.list().org(Some(OTHER_ORG)).send().await.error(403);

    connect.list().send().await.ok(200);
    connect.sim.expire_token(TOKEN);
    let expired = connect.list().send().await;
    assert!(expired.error(401).contains("valid access token"));
    assert!(connect.sim.calls().iter().all(|c| c.route == routes::LIST_ASSETS));
}

#[tokio::test]
async fn the_tracking_id_is_echoed() {
    let connect = Connect::start().await;
    let reply = connect.list().tracking_id("op-trace-42").send().await;
    assert_eq!(reply.header("trackingid"), Some("op-trace-42"));
    let refused = connect.list().token(None).tracking_id("op-trace-43").send().await;
    refused.error(401);
    assert_eq!(refused.header("trackingid"), Some("op-trace-43"));
    assert_ne!(refused.body["transid"], "op-trace-43", "transid is Connect's own transaction ID");
    assert!(connect.list().send().await.header("trackingid").is_some_and(|t| !t.is_empty()), "generated when absent");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let connect = Connect::start().await;
    connect.call(Method::DELETE, "/v2/digital/app/x").send().await.error(405);
    connect.call(Method::GET, "/v2/digital/apps").send().await.error(404);
    assert_eq!(connect.sim.count("GET <unmatched>"), 1);
}

// ---------------------------------------------------------------------------------------------
// Faults and records

#[tokio::test]
async fn throttling_with_and_without_retry_after_then_unavailable() {
    let connect = Connect::start().await;
    connect.sim.faults().on(routes::CREATE_ASSET).throttled(Some(9));
    connect.sim.faults().on(routes::CREATE_ASSET).throttled(None);
    connect.sim.faults().on("*").unavailable();

    let first = connect.create(&Asset::for_mailbox(MAILBOX)).send().await;
    first.error(429);
    assert_eq!(first.header("retry-after"), Some("9"));
    let second = connect.create(&Asset::for_mailbox(MAILBOX)).send().await;
    second.error(429);
    assert_eq!(second.header("retry-after"), None);
    connect.create(&Asset::for_mailbox(MAILBOX)).send().await.error(503);
    connect.create(&Asset::for_mailbox(MAILBOX)).send().await.ok(201);

    assert_eq!(connect.sim.assets(ORG).len(), 1, "faulted requests change nothing");
    assert_eq!(connect.sim.count(routes::CREATE_ASSET), 4);
    assert_eq!(connect.sim.faults().pending(), 0);
}

#[tokio::test]
async fn a_reset_drops_the_connection_and_latency_delays_the_answer() {
    let connect = Connect::start().await;
    connect.sim.faults().on(routes::GET_ASSET).reset();
    assert!(connect.get("any").try_send().await.is_err());
    let last = connect.sim.calls().pop().unwrap();
    assert_eq!((last.route.as_str(), last.status, last.tenant.as_deref()), (routes::GET_ASSET, 0, Some(ORG)));

    connect.sim.faults().on(routes::LIST_ASSETS).latency(Duration::from_millis(250));
    let started = Instant::now();
    connect.list().send().await.ok(200);
    assert!(started.elapsed() >= Duration::from_millis(250));
    let started = Instant::now();
    connect.list().send().await.ok(200);
    assert!(started.elapsed() < Duration::from_millis(250), "only once");
}

#[tokio::test]
async fn the_latency_option_delays_every_request() {
    let latency = Duration::from_millis(120);
    let connect = Connect::with(ConnectOptions::default().latency(latency, latency)).await;
    let started = Instant::now();
    connect.list().send().await.ok(200);
    connect.list().send().await.ok(200);
    assert!(started.elapsed() >= 2 * latency);
}

#[tokio::test]
async fn every_call_is_recorded_with_its_route_and_organization() {
    let connect = Connect::start().await;
    let id = connect.created().await;
    connect.get(&id).send().await.ok(200);
    connect.update(&id, &Asset::for_mailbox(MAILBOX)).send().await.ok(200);
    connect.list().token(Some(OTHER_TOKEN)).org(Some(OTHER_ORG)).send().await.ok(200);

    let calls = connect.sim.calls();
    let seen: Vec<(&str, u16, Option<&str>)> =
        calls.iter().map(|c| (c.route.as_str(), c.status, c.tenant.as_deref())).collect();
    assert_eq!(
        seen,
        [
            (routes::CREATE_ASSET, 201, Some(ORG)),
            (routes::GET_ASSET, 200, Some(ORG)),
            (routes::UPDATE_ASSET, 200, Some(ORG)),
            (routes::LIST_ASSETS, 200, Some(OTHER_ORG)),
        ]
    );
    assert_eq!(calls[1].path, format!("/connectapi/v2/digital/app/{id}"));
    assert_eq!(calls[1].query.as_deref(), Some("channel=email"));
    connect.sim.reset_calls();
    assert!(connect.sim.calls().is_empty());
}

#[test]
#[should_panic(expected = "not a Connect simulator route template")]
fn a_misspelt_route_fails_loudly() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sim = runtime.block_on(ConnectSim::start(ConnectOptions::default())).unwrap();
    sim.count("POST /connectapi/v2/digital/apps");
}

#[tokio::test]
async fn the_server_only_speaks_tls_trusted_through_the_test_ca() {
    let connect = Connect::start().await;
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).build().unwrap();
    assert!(untrusting.get(format!("{}/v2/digital/app", connect.sim.base_url())).send().await.is_err());
    assert!(
        connect.sim.base_url().starts_with("https://127.0.0.1:") && connect.sim.base_url().ends_with("/connectapi")
    );
}

// ---------------------------------------------------------------------------------------------
// The operator's client against the simulator

#[tokio::test]
async fn the_client_reads_connects_error_body() {
    let connect = Connect::start().await;
    let client = client(&connect);
    let token: SecretString = TOKEN.to_string().into();
    client.create(&org(&token), &settings("Support")).await.unwrap();
    let error = client.create(&org(&token), &settings("Support")).await.unwrap_err();
    match &error {
        ConnectError::Api { status: 409, error: body, .. } => {
            assert_eq!(body.code.as_deref(), Some("CONFLICT"));
            assert!(body.description.contains("already exists"), "{body:?}");
            assert!(body.transid.as_deref().is_some_and(|t| !t.is_empty()), "{body:?}");
        }
        other => panic!("{other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains("HTTP 409, code CONFLICT: assetName: an asset named 'Support' already exists"), "{text}");
    assert!(!error.is_transient() && !error.is_unauthorized() && !error.is_throttled());
    assert_eq!(connect.sim.count(routes::CREATE_ASSET), 2, "a conflict is not retried");
}

#[tokio::test]
async fn an_expired_token_is_unauthorized_not_throttling_until_it_is_renewed() {
    let connect = Connect::start().await;
    let client = client(&connect);
    let token: SecretString = TOKEN.to_string().into();
    let asset = client.create(&org(&token), &settings("Support")).await.unwrap();

    connect.sim.expire_token(TOKEN);
    let error = client.get(&org(&token), &asset.asset_id).await.unwrap_err();
    assert!(error.is_unauthorized(), "{error:?}");
    assert!(!error.is_throttled() && !error.is_transient() && !error.is_server_error());
    assert_eq!(error.status(), Some(401));
    assert!(error.to_string().contains("the access token was refused (HTTP 401, code UNAUTHORIZED)"), "{error}");
    assert_eq!(connect.sim.count(routes::GET_ASSET), 1, "a refused token is not retried");
    assert!(client.get(&org(&token), &asset.asset_id).await.unwrap_err().is_unauthorized(), "401 from then on");

    connect.sim.renew_token(TOKEN, "personal-access-token-renewed");
    let renewed: SecretString = "personal-access-token-renewed".to_string().into();
    let read = client.get(&org(&renewed), &asset.asset_id).await.unwrap();
    assert_eq!(read.map(|a| a.asset_id), Some(asset.asset_id.clone()));
    assert!(
        client.get(&org(&token), &asset.asset_id).await.unwrap_err().is_unauthorized(),
        "the old one stays expired"
    );

    let wrong_org = Org { region: ConnectRegion::Eu, organization_id: OTHER_ORG, token: &renewed };
    assert_eq!(client.get(&wrong_org, &asset.asset_id).await.unwrap_err().status(), Some(403));

    connect.sim.faults().on(routes::GET_ASSET).times(2).throttled(None);
    let throttled = client.get(&org(&renewed), &asset.asset_id).await.unwrap_err();
    assert!(throttled.is_throttled() && throttled.is_transient() && !throttled.is_unauthorized(), "{throttled:?}");
    connect.sim.faults().on(routes::GET_ASSET).times(2).unavailable();
    let unavailable = client.get(&org(&renewed), &asset.asset_id).await.unwrap_err();
    assert!(unavailable.is_server_error() && unavailable.is_transient() && !unavailable.is_unauthorized());
}

#[tokio::test]
async fn the_list_operation_can_be_switched_off() {
    let connect = Connect::start().await;
    let id = connect.created().await;
    connect.sim.set_list_unavailable(true);
    let refused = connect.list().send().await;
    assert_eq!(refused.error(404), "Resource not found.");
    connect.get(&id).send().await.ok(200);
    connect.update(&id, &Asset::for_mailbox(MAILBOX)).send().await.ok(200);

    let client = client(&connect);
    let token: SecretString = TOKEN.to_string().into();
    let error = client.find(&org(&token), "Support mailbox").await.unwrap_err();
    assert!(error.is_list_unavailable(), "{error:?}");
    assert!(!error.is_transient() && !error.is_unauthorized());
    assert!(client.get(&org(&token), &id).await.unwrap().is_some(), "reading by ID still works");
    assert_eq!(connect.sim.count(routes::LIST_ASSETS), 2, "the raw call and the client's, not retried");

    connect.sim.set_list_unavailable(false);
    let found = client.find(&org(&token), "SUPPORT MAILBOX").await.unwrap();
    assert_eq!(found.map(|a| a.asset_id), Some(id));
}

#[tokio::test]
async fn the_client_creates_assets_with_a_32_hex_forwarding_address() {
    let connect = Connect::start().await;
    let token: SecretString = TOKEN.to_string().into();
    let asset = client(&connect).create(&org(&token), &settings("Support")).await.unwrap();
    let forwarding = asset.forwarding_address.expect("a forwarding address");
    let (local, domain) = forwarding.split_once('@').unwrap();
    assert_eq!((local.len(), is_hex(local), domain), (32, true, "mail-eu.imiconnect.io"), "{forwarding}");
}
