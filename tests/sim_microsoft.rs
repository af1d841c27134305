//! The Microsoft simulator over real HTTPS: every documented behaviour the operator relies on
//! (sources in the module documentation of `sim/src/microsoft`), driven with reqwest trusting only
//! the simulator's test CA.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use connect_email_sim::{Audience, MicrosoftSim, SimOptions, routes};
use reqwest::Method;
use serde_json::{Value, json};
use support::sim_client::{
    self, EXCHANGE_SCOPE, GRAPH_SCOPE, OPERATOR, OPERATOR_SECRET, Reply, TENANT, client_credentials, https_client,
};

const EXCHANGE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
const MAIL_SEND_ROLE: &str = "b633e1c5-b582-4048-a93e-9f11b44c7e96";

/// A started simulator with one tenant, the operator's identity and a Graph token for it.
struct Sim {
    sim: MicrosoftSim,
    http: reqwest::Client,
    token: String,
}

/// Graph's and the identity platform's error bodies.
impl Reply {
    /// Asserts a Graph error with Graph's body shape and returns it.
    fn graph_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "unexpected reply: {self:?}");
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "unexpected error: {self:?}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        let request_id = self.header("request-id").expect("request-id header");
        assert_eq!(error["innerError"]["request-id"], request_id);
        assert!(error["innerError"]["date"].is_string());
        assert!(error["innerError"]["client-request-id"].is_string());
        error
    }

    /// Asserts an identity-platform error with its real body shape and returns the description.
    fn aad_error(&self, status: u16, error: &str, code: u64) -> String {
        assert_eq!(self.status, status, "unexpected reply: {self:?}");
        assert_eq!(self.body["error"], error, "{self:?}");
        assert_eq!(self.body["error_codes"], json!([code]), "{self:?}");
        let description = self.body["error_description"].as_str().unwrap();
        assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
        assert!(description.contains("\r\nTrace ID: "), "{description}");
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(self.body[field].is_string(), "missing {field}: {self:?}");
        }
        assert_eq!(self.body["error_uri"], format!("https://login.microsoftonline.com/error?code={code}"));
        description.to_string()
    }
}

/// Object ID and appId of an application created through Graph.
#[derive(Debug, Clone)]
struct App {
    id: String,
    app_id: String,
}

impl Sim {
    async fn start() -> Sim {
        Sim::with(SimOptions::default()).await
    }

    async fn with(options: SimOptions) -> Sim {
        let sim = sim_client::microsoft(options).await;
        let http = https_client(&sim.ca_pem());
        let mut this = Sim { sim, http, token: String::new() };
        let reply = this.token_for(OPERATOR, OPERATOR_SECRET, GRAPH_SCOPE).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        this.token = reply.body["access_token"].as_str().unwrap().to_string();
        this
    }

    async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Reply {
        let url = sim_client::token_url(&self.sim, tenant);
        Reply::read(self.http.post(url).form(form).send().await.unwrap()).await
    }

    async fn token_for(&self, client_id: &str, secret: &str, scope: &str) -> Reply {
        self.token_request(TENANT, &client_credentials(client_id, secret, scope)).await
    }

    async fn assertion_token(&self, client_id: &str, assertion: &str) -> Reply {
        self.token_request(
            TENANT,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion),
                ("scope", GRAPH_SCOPE),
            ],
        )
        .await
    }

    async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        prefer: bool,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}/v1.0{path}", self.sim.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if prefer {
            request = request.header("Prefer", "create-if-missing");
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::read(request.send().await.unwrap()).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>, prefer: bool) -> Reply {
        self.send_as(Some(&self.token), method, path, body, prefer).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, false).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body), false).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), false).await
    }

    async fn upsert(&self, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(body), true).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None, false).await
    }

    /// Upserts an application by uniqueName and returns its IDs (from the 201 body).
    async fn create_app(&self, unique_name: &str) -> App {
        let reply = self
            .upsert(
                // OData string literals escape a quote by doubling it.
                &format!("/applications(uniqueName='{}')", unique_name.replace('\'', "''")),
                json!({"displayName": format!("app {unique_name}")}),
            )
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        App {
            id: reply.body["id"].as_str().unwrap().to_string(),
            app_id: reply.body["appId"].as_str().unwrap().to_string(),
        }
    }

    /// An application with its service principal, ready to authenticate.
    async fn create_app_with_sp(&self, unique_name: &str) -> App {
        let app = self.create_app(unique_name).await;
        let reply = self.post("/servicePrincipals", json!({"appId": app.app_id})).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        app
    }

    async fn add_password(&self, app: &App, credential: Value) -> Reply {
        self.post(&format!("/applications/{}/addPassword", app.id), json!({"passwordCredential": credential})).await
    }

    /// Adds a password and returns its secret text.
    async fn new_secret(&self, app: &App) -> String {
        let reply = self.add_password(app, json!({"displayName": "rotation"})).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["secretText"].as_str().unwrap().to_string()
    }

    async fn service_principal_id(&self, app_id: &str) -> String {
        let reply = self.get(&format!("/servicePrincipals(appId='{app_id}')")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["id"].as_str().unwrap().to_string()
    }
}

fn federation_assertion(audience: &str, expires_in: i64) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({
        "iss": "https://oidc.cluster.example/issuer",
        "sub": "system:serviceaccount:connect-email:operator",
        "aud": [audience],
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
    });
    format!(
        "{}.{}.signature-not-verified",
        engine.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        engine.encode(claims.to_string())
    )
}

// ---------------------------------------------------------------------------------------------
// Applications

#[tokio::test]
async fn upsert_by_unique_name_creates_then_updates_and_is_404_without_prefer() {
    let sim = Sim::start().await;
    let path = "/applications(uniqueName='ceo-3f2a')";

    let missing = sim.patch(path, json!({"displayName": "Connect email"})).await;
    missing.graph_error(404, "Request_ResourceNotFound");

    let created = sim.upsert(path, json!({"displayName": "Connect email"})).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["uniqueName"], "ceo-3f2a");
    assert_eq!(created.body["displayName"], "Connect email");
    assert_eq!(created.body["signInAudience"], "AzureADMyOrg");
    assert!(created.header("location").is_some());

    let updated = sim.upsert(path, json!({"displayName": "Connect email (renamed)"})).await;
    assert_eq!(updated.status, 204);
    assert_eq!(updated.body, Value::Null, "204 has no body");

    let apps = sim.sim.applications(TENANT);
    assert_eq!(apps.len(), 1, "an upsert never duplicates");
    assert_eq!(apps[0].display_name, "Connect email (renamed)");
    assert_eq!(sim.sim.count(routes::UPSERT_APPLICATION), 3);
}

#[tokio::test]
async fn creating_an_application_requires_a_display_name() {
    let sim = Sim::start().await;
    let reply = sim.upsert("/applications(uniqueName='no-name')", json!({"notes": "x"})).await;
    reply.graph_error(400, "Request_BadRequest");
    assert!(sim.sim.applications(TENANT).is_empty());
}

#[tokio::test]
async fn an_application_reads_the_same_by_object_id_app_id_and_unique_name() {
    let sim = Sim::start().await;
    let app = sim.create_app("it's a key").await;

    let by_id = sim.get(&format!("/applications/{}", app.id)).await;
    let by_app_id = sim.get(&format!("/applications(appId='{}')", app.app_id)).await;
    // The OData literal escapes the quote; reqwest percent-encodes the spaces.
    let by_unique_name = sim.get("/applications(uniqueName='it''s a key')").await;

    for reply in [&by_id, &by_app_id, &by_unique_name] {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["id"], app.id);
        assert_eq!(reply.body["appId"], app.app_id);
        assert_eq!(reply.body["uniqueName"], "it's a key");
    }
    assert_eq!(sim.sim.count(routes::GET_APPLICATION), 1);
    assert_eq!(sim.sim.count(routes::GET_APPLICATION_BY_APP_ID), 1);
    assert_eq!(sim.sim.count(routes::GET_APPLICATION_BY_UNIQUE_NAME), 1);

    sim.get("/applications(appId='00000000-1111-4222-8333-444444444444')")
        .await
        .graph_error(404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn patch_replaces_collections_and_merges_complex_properties() {
    let sim = Sim::start().await;
    let app = sim.create_app("collections").await;
    let path = format!("/applications/{}", app.id);

    let first = sim
        .patch(
            &path,
            json!({
                "web": {
                    "redirectUris": ["https://a.example/callback", "https://b.example/callback"],
                    "implicitGrantSettings": {"enableAccessTokenIssuance": true}
                },
                "requiredResourceAccess": [{
                    "resourceAppId": EXCHANGE_APP_ID,
                    "resourceAccess": [{"id": MAIL_SEND_ROLE, "type": "Role"}]
                }],
                "tags": ["connect-email", "managed"]
            }),
        )
        .await;
    assert_eq!(first.status, 204, "{first:?}");

    let second = sim
        .patch(
            &path,
            json!({
                "web": {"redirectUris": ["https://c.example/callback"]},
                "requiredResourceAccess": [{
                    "resourceAppId": EXCHANGE_APP_ID,
                    "resourceAccess": [{"id": "76faac2a-0f20-42f1-928a-50de5b9dbe52", "type": "Scope"}]
                }],
                "tags": ["connect-email"]
            }),
        )
        .await;
    assert_eq!(second.status, 204, "{second:?}");

    let app = sim.get(&path).await.body;
    assert_eq!(
        app["web"]["redirectUris"],
        json!(["https://c.example/callback"]),
        "collections are replaced, not merged"
    );
    assert_eq!(app["web"]["implicitGrantSettings"]["enableAccessTokenIssuance"], true, "complex values are merged");
    assert_eq!(app["tags"], json!(["connect-email"]));
    assert_eq!(
        app["requiredResourceAccess"][0]["resourceAccess"],
        json!([{"id": "76faac2a-0f20-42f1-928a-50de5b9dbe52", "type": "Scope"}])
    );
}

#[tokio::test]
async fn invalid_redirect_uris_and_unknown_properties_are_rejected() {
    let sim = Sim::start().await;
    let app = sim.create_app("validation").await;
    let path = format!("/applications/{}", app.id);

    for bad in [
        "http://example.com/callback".to_string(),
        "https://*.example.com/callback".to_string(),
        format!("https://example.com/{}", "x".repeat(250)),
    ] {
        let reply = sim.patch(&path, json!({"web": {"redirectUris": [bad]}})).await;
        let error = reply.graph_error(400, "Request_BadRequest");
        assert_eq!(error["details"][0]["target"], "web.redirectUris");
    }
    let ok = sim.patch(&path, json!({"web": {"redirectUris": ["http://localhost:8080/cb"]}})).await;
    assert_eq!(ok.status, 204);

    sim.patch(&path, json!({"displayNme": "typo"})).await.graph_error(400, "Request_BadRequest");
    sim.patch(&path, json!({"passwordCredentials": []})).await.graph_error(400, "Request_BadRequest");
}

#[tokio::test]
async fn unique_name_can_be_set_once_to_adopt_an_application_and_never_changed() {
    let sim = Sim::start().await;
    let (object_id, app_id) = sim.sim.seed_application(TENANT, "Made in the portal");
    let path = format!("/applications/{object_id}");

    let adopt = sim.patch(&path, json!({"uniqueName": "adopted-1"})).await;
    assert_eq!(adopt.status, 204, "{adopt:?}");
    let read = sim.get("/applications(uniqueName='adopted-1')").await;
    assert_eq!(read.body["appId"], app_id);

    let same = sim.patch(&path, json!({"uniqueName": "adopted-1"})).await;
    assert_eq!(same.status, 204, "setting the same value is not a change");

    sim.patch(&path, json!({"uniqueName": "adopted-2"})).await.graph_error(400, "Request_BadRequest");
    sim.upsert("/applications(uniqueName='adopted-1')", json!({"uniqueName": "other", "displayName": "x"}))
        .await
        .graph_error(400, "Request_BadRequest");
}

// ---------------------------------------------------------------------------------------------
// Passwords and the token endpoint

#[tokio::test]
async fn secret_text_is_returned_only_by_add_password() {
    let sim = Sim::start().await;
    let app = sim.create_app("secrets").await;

    let added =
        sim.add_password(&app, json!({"displayName": "ceo-rotation-1", "endDateTime": "2099-01-01T00:00:00Z"})).await;
    assert_eq!(added.status, 200, "{added:?}");
    let secret = added.body["secretText"].as_str().unwrap();
    assert_eq!(secret.len(), 40);
    assert!(secret.contains('~'));
    assert_eq!(added.body["hint"], &secret[..3]);
    assert_eq!(added.body["displayName"], "ceo-rotation-1");
    assert_eq!(added.body["endDateTime"], "2099-01-01T00:00:00Z");
    let key_id = added.body["keyId"].as_str().unwrap();

    let read = sim.get(&format!("/applications/{}", app.id)).await;
    let credentials = read.body["passwordCredentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 1);
    assert_eq!(credentials[0]["keyId"], key_id);
    assert_eq!(credentials[0]["hint"], &secret[..3]);
    assert_eq!(credentials[0]["secretText"], Value::Null);
    let raw = serde_json::to_string(&read.body).unwrap();
    assert!(!raw.contains(secret), "the secret never appears in a GET");

    assert_eq!(sim.sim.issued_secrets(), vec![secret.to_string()]);
    let stored = &sim.sim.applications(TENANT)[0].passwords[0];
    assert_eq!(stored.secret_text, secret);
    assert!(!format!("{stored:?}").contains(secret), "Debug redacts");
}

#[tokio::test]
async fn add_password_defaults_to_two_years() {
    let sim = Sim::start().await;
    let app = sim.create_app("default-lifetime").await;
    let added = sim.add_password(&app, json!({})).await;
    let start: jiff::Timestamp = added.body["startDateTime"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = added.body["endDateTime"].as_str().unwrap().parse().unwrap();
    let days = end.duration_since(start).as_hours() / 24;
    assert!((730..=731).contains(&days), "{days} days");
}

#[tokio::test]
async fn the_token_endpoint_accepts_a_new_secret_and_rejects_a_wrong_one() {
    let sim = Sim::start().await;
    let app = sim.create_app_with_sp("token-ok").await;
    let secret = sim.new_secret(&app).await;

    let ok = sim.token_for(&app.app_id, &secret, EXCHANGE_SCOPE).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["token_type"], "Bearer");
    assert_eq!(ok.body["expires_in"], 3599);
    assert_eq!(ok.body["ext_expires_in"], 3599);
    let token = ok.body["access_token"].as_str().unwrap();
    assert_eq!(sim.sim.validate_token(token, Audience::Exchange), Some((TENANT.to_string(), app.app_id.clone())));
    assert_eq!(sim.sim.validate_token(token, Audience::Graph), None);

    let wrong = sim.token_for(&app.app_id, "not-the-secret", EXCHANGE_SCOPE).await;
    let description = wrong.aad_error(401, "invalid_client", 7000215);
    assert!(description.contains(&app.app_id));
    assert!(!description.contains("not-the-secret"));

    let calls = sim.sim.calls();
    let last = calls.last().unwrap();
    assert_eq!(last.route, routes::TOKEN);
    assert_eq!(last.status, 401);
    assert_eq!(last.tenant.as_deref(), Some(TENANT));
    assert_eq!(last.client_id.as_deref(), Some(app.app_id.as_str()));
}

#[tokio::test]
async fn an_application_without_a_service_principal_cannot_get_tokens() {
    let sim = Sim::start().await;
    let app = sim.create_app("no-sp").await;
    let secret = sim.new_secret(&app).await;
    sim.token_for(&app.app_id, &secret, GRAPH_SCOPE).await.aad_error(401, "invalid_client", 7000229);
}

#[tokio::test]
async fn an_expired_secret_is_rejected_with_7000222() {
    let sim = Sim::start().await;
    let (object_id, app_id) = sim.sim.seed_application(TENANT, "expiring");
    let (_key_id, secret) = sim.sim.seed_password(TENANT, &object_id, "short", Duration::from_secs(3600));

    let before = sim.token_for(&app_id, &secret, GRAPH_SCOPE).await;
    assert_eq!(before.status, 200, "{before:?}");

    sim.sim.advance_clock(Duration::from_secs(2 * 3600));
    sim.token_for(&app_id, &secret, GRAPH_SCOPE).await.aad_error(401, "invalid_client", 7000222);
}

#[tokio::test]
async fn a_new_secret_is_rejected_until_it_has_propagated() {
    let sim = Sim::start().await;
    let app = sim.create_app_with_sp("propagation").await;
    sim.sim.faults().set_password_propagation(Duration::from_millis(300));
    let secret = sim.new_secret(&app).await;

    sim.token_for(&app.app_id, &secret, GRAPH_SCOPE).await.aad_error(401, "invalid_client", 7000215);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let later = sim.token_for(&app.app_id, &secret, GRAPH_SCOPE).await;
    assert_eq!(later.status, 200, "{later:?}");
}

#[tokio::test]
async fn a_removed_password_stops_working_and_removing_it_again_is_a_404() {
    let sim = Sim::start().await;
    let app = sim.create_app_with_sp("remove").await;
    let added = sim.add_password(&app, json!({})).await;
    let key_id = added.body["keyId"].as_str().unwrap();
    let secret = added.body["secretText"].as_str().unwrap();
    let path = format!("/applications/{}/removePassword", app.id);

    let removed = sim.post(&path, json!({"keyId": key_id})).await;
    assert_eq!(removed.status, 204, "{removed:?}");
    sim.token_for(&app.app_id, secret, GRAPH_SCOPE).await.aad_error(401, "invalid_client", 7000215);
    sim.post(&path, json!({"keyId": key_id})).await.graph_error(404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn token_requests_for_unknown_tenants_apps_and_scopes_fail_like_entra() {
    let sim = Sim::start().await;
    let form = |scope: &'static str, client: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", OPERATOR_SECRET),
            ("scope", scope),
        ]
    };
    sim.token_request("no-such-tenant", &form(GRAPH_SCOPE, OPERATOR)).await.aad_error(400, "invalid_tenant", 90002);
    sim.token_request(TENANT, &form(GRAPH_SCOPE, "99999999-9999-4999-8999-999999999999")).await.aad_error(
        400,
        "unauthorized_client",
        700016,
    );
    sim.token_request(
        TENANT,
        &form("https://graph.microsoft.com/.default https://outlook.office365.com/.default", OPERATOR),
    )
    .await
    .aad_error(400, "invalid_scope", 70011);
    sim.token_request(TENANT, &form("https://graph.microsoft.com/Mail.Send", OPERATOR)).await.aad_error(
        400,
        "invalid_scope",
        1002012,
    );
    sim.token_request(TENANT, &[("grant_type", "client_credentials"), ("client_id", OPERATOR), ("scope", GRAPH_SCOPE)])
        .await
        .aad_error(401, "invalid_client", 7000218);
}

#[tokio::test]
async fn a_federated_operator_authenticates_with_a_client_assertion() {
    let sim = Sim::start().await;
    let federated = "fed0fed0-0000-4000-8000-000000000001";
    sim.sim.add_operator_federated(TENANT, federated);
    let ok = sim.assertion_token(federated, &federation_assertion("api://AzureADTokenExchange", 600)).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let token = ok.body["access_token"].as_str().unwrap();
    assert_eq!(sim.sim.validate_token(token, Audience::Graph), Some((TENANT.to_string(), federated.to_string())));

    sim.assertion_token(federated, &federation_assertion("https://kubernetes.default.svc", 600)).await.aad_error(
        400,
        "invalid_request",
        700212,
    );
    sim.assertion_token(federated, &federation_assertion("api://AzureADTokenExchange", -3600)).await.aad_error(
        400,
        "invalid_client",
        700024,
    );
    sim.assertion_token(federated, "garbage").await.aad_error(400, "invalid_request", 50027);
}

#[tokio::test]
async fn graph_demands_a_valid_graph_token() {
    let sim = Sim::start().await;
    let exchange_token = sim.token_for(OPERATOR, OPERATOR_SECRET, EXCHANGE_SCOPE).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let missing = sim.send_as(None, Method::GET, "/applications", None, false).await;
    missing.graph_error(401, "InvalidAuthenticationToken");
    assert!(missing.header("www-authenticate").is_some());
    sim.send_as(Some(&exchange_token), Method::GET, "/applications", None, false)
        .await
        .graph_error(401, "InvalidAuthenticationToken");
    sim.send_as(Some("forged"), Method::GET, "/applications", None, false)
        .await
        .graph_error(401, "InvalidAuthenticationToken");

    sim.sim.advance_clock(Duration::from_secs(3600));
    sim.get("/applications").await.graph_error(401, "InvalidAuthenticationToken");
}

// ---------------------------------------------------------------------------------------------
// Eventual consistency

#[tokio::test]
async fn a_new_application_is_invisible_until_it_has_replicated() {
    let sim = Sim::start().await;
    sim.sim.faults().set_replication_lag(Duration::from_millis(300));
    let app = sim.create_app("lagging").await;
    let secret_text = sim.sim.seed_password(TENANT, &app.id, "seeded", Duration::from_secs(3600));

    sim.get(&format!("/applications/{}", app.id)).await.graph_error(404, "Request_ResourceNotFound");
    sim.get("/applications(uniqueName='lagging')").await.graph_error(404, "Request_ResourceNotFound");
    sim.add_password(&app, json!({})).await.graph_error(404, "Request_ResourceNotFound");
    let error = sim.post("/servicePrincipals", json!({"appId": app.app_id})).await;
    let error = error.graph_error(400, "Request_BadRequest");
    assert_eq!(error["details"][0]["code"], "NoBackingApplicationObject");
    sim.token_for(&app.app_id, &secret_text.1, GRAPH_SCOPE).await.aad_error(400, "unauthorized_client", 700016);
    // The upsert path sees the object, so retrying the create never duplicates it.
    let again = sim.upsert("/applications(uniqueName='lagging')", json!({"displayName": "app lagging"})).await;
    assert_eq!(again.status, 204);

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(sim.get(&format!("/applications/{}", app.id)).await.status, 200);
    assert_eq!(sim.add_password(&app, json!({})).await.status, 200);
    let sp = sim.post("/servicePrincipals", json!({"appId": app.app_id})).await;
    assert_eq!(sp.status, 201, "{sp:?}");
    assert_eq!(sim.sim.applications(TENANT).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn throttling_with_and_without_retry_after() {
    let sim = Sim::start().await;
    let app = sim.create_app("throttled").await;
    sim.sim.faults().on(routes::ADD_PASSWORD).throttled(Some(7));
    sim.sim.faults().on(routes::ADD_PASSWORD).throttled(None);

    let first = sim.add_password(&app, json!({})).await;
    first.graph_error(429, "TooManyRequests");
    assert_eq!(first.header("retry-after"), Some("7"));
    let second = sim.add_password(&app, json!({})).await;
    second.graph_error(429, "TooManyRequests");
    assert_eq!(second.header("retry-after"), None);
    let third = sim.add_password(&app, json!({})).await;
    assert_eq!(third.status, 200);

    assert_eq!(sim.sim.count(routes::ADD_PASSWORD), 3);
    assert_eq!(sim.sim.applications(TENANT)[0].passwords.len(), 1);
    assert_eq!(sim.sim.faults().pending(), 0);
}

#[tokio::test]
async fn service_unavailable_then_success_and_wildcard_faults() {
    let sim = Sim::start().await;
    sim.sim.faults().on(routes::GET_DEFAULT_APP_MANAGEMENT_POLICY).times(2).unavailable();
    for _ in 0..2 {
        sim.get("/policies/defaultAppManagementPolicy").await.graph_error(503, "serviceNotAvailable");
    }
    assert_eq!(sim.get("/policies/defaultAppManagementPolicy").await.status, 200);

    sim.sim.faults().on("*").status(503, Some(2));
    let token = sim.token_for(OPERATOR, OPERATOR_SECRET, GRAPH_SCOPE).await;
    token.aad_error(503, "temporarily_unavailable", 90033);
    assert_eq!(token.header("retry-after"), Some("2"));
}

#[tokio::test]
async fn a_reset_drops_the_connection_without_a_response() {
    let sim = Sim::start().await;
    sim.sim.faults().on(routes::LIST_APPLICATIONS).reset();
    let result = sim.http.get(format!("{}/v1.0/applications", sim.sim.url())).bearer_auth(&sim.token).send().await;
    assert!(result.is_err(), "expected a transport error, got {result:?}");
    let last = sim.sim.calls().pop().unwrap();
    assert_eq!((last.route.as_str(), last.status), (routes::LIST_APPLICATIONS, 0));

    assert_eq!(sim.get("/applications").await.status, 200, "only once");
}

#[tokio::test]
async fn a_lost_response_applies_the_change_and_a_retried_create_is_already_there() {
    let sim = Sim::start().await;
    let app = sim.create_app_with_sp("lost-answer").await;
    let client_sp = sim.service_principal_id(&app.app_id).await;
    let resource_sp = sim.service_principal_id(EXCHANGE_APP_ID).await;

    // App role assignment: applied, answer lost; the retry is a duplicate.
    sim.sim.faults().on(routes::CREATE_APP_ROLE_ASSIGNED_TO).lose_response();
    let path = format!("{}/v1.0/servicePrincipals/{resource_sp}/appRoleAssignedTo", sim.sim.url());
    let body = json!({"principalId": client_sp, "resourceId": resource_sp, "appRoleId": MAIL_SEND_ROLE});
    let lost = sim.http.post(&path).bearer_auth(&sim.token).json(&body).send().await;
    assert!(lost.is_err(), "expected a transport error, got {lost:?}");
    assert_eq!(sim.sim.app_role_assignments(TENANT).len(), 1, "the change was not applied");
    let retried = sim.post(&format!("/servicePrincipals/{resource_sp}/appRoleAssignedTo"), body).await;
    let error = retried.graph_error(400, "Request_BadRequest");
    assert_eq!(error["message"], "Permission being assigned already exists on the object.");

    // Delegated grant: the same, answered 409.
    sim.sim.faults().on(routes::CREATE_GRANT).lose_response();
    let body =
        json!({"clientId": client_sp, "consentType": "AllPrincipals", "resourceId": resource_sp, "scope": "SMTP.Send"});
    let grants = format!("{}/v1.0/oauth2PermissionGrants", sim.sim.url());
    let lost = sim.http.post(&grants).bearer_auth(&sim.token).json(&body).send().await;
    assert!(lost.is_err(), "expected a transport error, got {lost:?}");
    assert_eq!(sim.sim.oauth2_permission_grants(TENANT).len(), 1, "the change was not applied");
    let retried = sim.post("/oauth2PermissionGrants", body).await;
    let error = retried.graph_error(409, "Request_MultipleObjectsWithSameKeyValue");
    assert_eq!(error["message"], "Permission entry already exists.");
}

#[tokio::test]
async fn tenant_latency_delays_only_that_tenants_requests() {
    const OTHER: &str = "6f1a2b3c-0000-4000-8000-00000000beef";
    let sim = Sim::start().await;
    sim.sim.add_operator_client_secret(OTHER, OPERATOR, OPERATOR_SECRET);
    sim.sim.faults().set_tenant_latency(TENANT, Duration::from_millis(400));
    let token = |tenant: &'static str| {
        sim.token_request(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", OPERATOR),
                ("client_secret", OPERATOR_SECRET),
                ("scope", GRAPH_SCOPE),
            ],
        )
    };
    let started = Instant::now();
    assert_eq!(token(OTHER).await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(400));
    let started = Instant::now();
    assert_eq!(token(TENANT).await.status, 200);
    assert_eq!(sim.get("/applications").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(800), "token and Graph requests of the tenant are delayed");
    sim.sim.faults().set_tenant_latency(TENANT, Duration::ZERO);
    let started = Instant::now();
    assert_eq!(sim.get("/applications").await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn injected_latency_delays_the_answer() {
    let sim = Sim::start().await;
    sim.sim.faults().on(routes::LIST_SERVICE_PRINCIPALS).latency(Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(sim.get("/servicePrincipals").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
    let started = Instant::now();
    assert_eq!(sim.get("/servicePrincipals").await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(250), "only once");
}

#[tokio::test]
async fn the_latency_option_delays_every_request() {
    let latency = Duration::from_millis(120);
    let sim = Sim::with(SimOptions::default().latency(latency, latency)).await;
    let started = Instant::now();
    sim.get("/applications").await;
    sim.get("/applications").await;
    assert!(started.elapsed() >= 2 * latency);
}

#[test]
#[should_panic(expected = "not a simulator route template")]
fn a_misspelt_route_fails_loudly() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sim = runtime.block_on(MicrosoftSim::start(SimOptions::default())).unwrap();
    sim.count("POST /applications/{id}/addpassword");
}

#[tokio::test]
async fn writes_beyond_the_rate_limit_are_throttled_per_client() {
    let sim = Sim::start().await;
    sim.sim.faults().set_write_rate_limit(2, Duration::from_secs(60));
    sim.create_app("w1").await;
    sim.create_app("w2").await;

    let throttled = sim.upsert("/applications(uniqueName='w3')", json!({"displayName": "w3"})).await;
    throttled.graph_error(429, "TooManyRequests");
    let retry_after: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(
        throttled.header("x-ms-throttle-scope"),
        Some(format!("Tenant_Application/Write/{OPERATOR}/{TENANT}").as_str())
    );
    assert_eq!(sim.get("/applications").await.status, 200, "reads still pass");

    sim.sim.advance_clock(Duration::from_secs(61));
    let token = sim.token_for(OPERATOR, OPERATOR_SECRET, GRAPH_SCOPE).await;
    let fresh = token.body["access_token"].as_str().unwrap();
    let after = sim
        .send_as(Some(fresh), Method::PATCH, "/applications(uniqueName='w3')", Some(json!({"displayName": "w3"})), true)
        .await;
    assert_eq!(after.status, 201, "{after:?}");
}

#[tokio::test]
async fn usage_above_eighty_percent_is_reported_and_resource_units_are_limited() {
    let sim = Sim::start().await;
    sim.sim.faults().set_write_rate_limit(10, Duration::from_secs(60));
    for i in 0..8 {
        let reply = sim.upsert(&format!("/applications(uniqueName='u{i}')"), json!({"displayName": "u"})).await;
        assert_eq!(reply.status, 201);
        assert_eq!(reply.header("x-ms-resource-unit"), Some("1"));
        // Documented: only sent once more than 0.8 of the limit is used.
        assert_eq!(reply.header("x-ms-throttle-limit-percentage"), None, "after {} writes", i + 1);
    }
    let ninth = sim.upsert("/applications(uniqueName='u8')", json!({"displayName": "u"})).await;
    assert_eq!(ninth.header("x-ms-throttle-limit-percentage"), Some("0.90"));
    // Listing applications costs 2 units, 1 with $select.
    assert_eq!(sim.get("/applications").await.header("x-ms-resource-unit"), Some("2"));
    assert_eq!(sim.get("/applications?$select=id").await.header("x-ms-resource-unit"), Some("1"));

    sim.sim.faults().clear_write_rate_limit();
    sim.sim.faults().set_resource_unit_limit(5, Duration::from_secs(10));
    assert_eq!(sim.get("/applications").await.status, 200); // 2
    assert_eq!(sim.get("/applications").await.status, 200); // 4
    let over = sim.get("/applications").await;
    over.graph_error(429, "TooManyRequests");
    assert_eq!(over.header("x-ms-throttle-information"), Some("ResourceUnitLimitExceeded"));
    assert_eq!(
        over.header("x-ms-throttle-scope"),
        Some(format!("Tenant_Application/ReadWrite/{OPERATOR}/{TENANT}").as_str())
    );
    assert!(over.header("retry-after").is_some());
    assert_eq!(sim.get("/applications?$select=id").await.status, 200, "a 1-unit request still fits");
}

// ---------------------------------------------------------------------------------------------
// Delta query

#[tokio::test]
async fn delta_reports_changes_and_removals_since_a_link() {
    let sim = Sim::with(SimOptions::default().page_size(2)).await;
    let a = sim.create_app_with_sp("d-a").await;
    let b = sim.create_app("d-b").await;
    sim.create_app("d-c").await;

    // A full synchronisation pages through everything, then hands out a delta link.
    let first = sim.get("/applications/delta?$select=id,appId").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["value"].as_array().unwrap().len(), 2);
    assert!(first.body["value"][0].get("displayName").is_none(), "$select limits the properties");
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    assert!(first.body.get("@odata.deltaLink").is_none());
    let second = sim.get(next.split_once("/v1.0").unwrap().1).await;
    assert_eq!(second.body["value"].as_array().unwrap().len(), 1);
    assert!(second.body["@odata.deltaLink"].is_string());

    // From now: no objects, only a link.
    let latest = sim.get("/applications/delta?$deltatoken=latest").await;
    assert_eq!(latest.body["value"], json!([]));
    let link = latest.body["@odata.deltaLink"].as_str().unwrap().split_once("/v1.0").unwrap().1.to_string();

    let unchanged = sim.get(&link).await;
    assert_eq!(unchanged.body["value"], json!([]), "nothing changed yet");
    let link = unchanged.body["@odata.deltaLink"].as_str().unwrap().split_once("/v1.0").unwrap().1.to_string();

    assert_eq!(sim.patch(&format!("/applications/{}", a.id), json!({"notes": "edited"})).await.status, 204);
    sim.new_secret(&b).await;
    let d = sim.create_app("d-d").await;
    assert_eq!(sim.delete(&format!("/applications/{}", b.id)).await.status, 204);
    // Three changes, two per page.
    let changes = sim.get(&link).await;
    let mut value = changes.body["value"].as_array().unwrap().clone();
    assert_eq!(value.len(), 2);
    let rest = sim.get(changes.body["@odata.nextLink"].as_str().unwrap().split_once("/v1.0").unwrap().1).await;
    value.extend(rest.body["value"].as_array().unwrap().iter().cloned());
    assert!(rest.body["@odata.deltaLink"].is_string());
    let ids: Vec<&str> =
        value.iter().filter(|v| v.get("@removed").is_none()).map(|v| v["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&a.id.as_str()) && ids.contains(&d.id.as_str()), "{value:?}");
    let removed: Vec<&Value> = value.iter().filter(|v| v.get("@removed").is_some()).collect();
    assert_eq!(removed.len(), 1, "{value:?}");
    assert_eq!(removed[0]["id"], b.id.to_ascii_lowercase());
    assert_eq!(removed[0]["@removed"]["reason"], "changed", "in deleted items: restorable");

    // Grants and service principals have their own feeds.
    let grants = sim.get("/oauth2PermissionGrants/delta?$deltatoken=latest").await;
    let grant_link = grants.body["@odata.deltaLink"].as_str().unwrap().split_once("/v1.0").unwrap().1.to_string();
    let sp = sim.service_principal_id(&a.app_id).await;
    let exchange = sim.service_principal_id(EXCHANGE_APP_ID).await;
    let created = sim
        .post(
            "/oauth2PermissionGrants",
            json!({"clientId": sp, "consentType": "AllPrincipals", "resourceId": exchange, "scope": "SMTP.Send"}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let grant_changes = sim.get(&format!("{grant_link}&$select=id,clientId")).await;
    assert_eq!(grant_changes.body["value"][0]["clientId"], sp);
    assert_eq!(sim.get("/servicePrincipals/delta?$deltatoken=latest").await.status, 200);

    // An unknown (or expired) token: start again.
    let expired = sim.get("/applications/delta?$deltatoken=not-a-token").await;
    expired.graph_error(410, "syncStateNotFound");
    assert_eq!(sim.sim.count(routes::APPLICATIONS_DELTA), 7);
}

// ---------------------------------------------------------------------------------------------
// App management policy

#[tokio::test]
async fn the_password_lifetime_cap_shows_in_the_policy_and_rejects_longer_secrets() {
    let sim = Sim::start().await;
    let app = sim.create_app("capped").await;

    let uncapped = sim.get("/policies/defaultAppManagementPolicy").await;
    assert_eq!(uncapped.body["isEnabled"], false);
    assert_eq!(uncapped.body["applicationRestrictions"]["passwordCredentials"], json!([]));

    sim.sim.faults().set_password_lifetime_cap(Some(Duration::from_secs(30 * 86_400)));
    let policy = sim.get("/policies/defaultAppManagementPolicy").await;
    assert_eq!(policy.body["id"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(policy.body["isEnabled"], true);
    let restriction = &policy.body["applicationRestrictions"]["passwordCredentials"][0];
    assert_eq!(restriction["restrictionType"], "passwordLifetime");
    assert_eq!(restriction["maxLifetime"], "P30D");

    let too_long = sim.add_password(&app, json!({})).await;
    let error = too_long.graph_error(400, "CredentialInvalidLifetimeAsPerAppPolicy");
    assert_eq!(error["details"][0]["code"], "InvalidKeyEndDate");

    let end = (sim.sim.now() + jiff::SignedDuration::from_hours(24 * 29)).to_string();
    let within = sim.add_password(&app, json!({"endDateTime": end})).await;
    assert_eq!(within.status, 200, "{within:?}");
}

// ---------------------------------------------------------------------------------------------
// Deletion

#[tokio::test]
async fn delete_is_soft_and_can_be_restored_or_purged() {
    let sim = Sim::start().await;
    let app = sim.create_app_with_sp("recycled").await;
    let path = format!("/applications/{}", app.id);

    assert_eq!(sim.delete(&path).await.status, 204);
    sim.get(&path).await.graph_error(404, "Request_ResourceNotFound");
    assert!(
        sim.sim.service_principals(TENANT).iter().all(|sp| sp.app_id != app.app_id),
        "the service principal goes with the application"
    );
    let deleted = sim.get("/directory/deletedItems/microsoft.graph.application").await;
    assert_eq!(deleted.body["value"][0]["id"], app.id);
    assert!(deleted.body["value"][0]["deletedDateTime"].is_string());

    // Unconfirmed behaviour, chosen by the simulator: the uniqueName stays reserved.
    sim.upsert("/applications(uniqueName='recycled')", json!({"displayName": "again"}))
        .await
        .graph_error(409, "Request_MultipleObjectsWithSameKeyValue");

    let restored = sim.post(&format!("/directory/deletedItems/{}/restore", app.id), json!({})).await;
    assert_eq!(restored.status, 200, "{restored:?}");
    assert_eq!(restored.body["@odata.type"], "#microsoft.graph.application");
    assert_eq!(sim.get(&path).await.status, 200);

    assert_eq!(sim.delete(&path).await.status, 204);
    let purge = sim.delete(&format!("/directory/deletedItems/{}", app.id)).await;
    assert_eq!(purge.status, 204);
    assert!(sim.sim.deleted_applications(TENANT).is_empty());
    let recreated = sim.upsert("/applications(uniqueName='recycled')", json!({"displayName": "again"})).await;
    assert_eq!(recreated.status, 201);
}

#[tokio::test]
async fn deleted_items_are_purged_after_thirty_days() {
    let sim = Sim::start().await;
    let app = sim.create_app("old").await;
    sim.delete(&format!("/applications/{}", app.id)).await;
    sim.sim.advance_clock(Duration::from_secs(31 * 86_400));
    let token = sim.token_for(OPERATOR, OPERATOR_SECRET, GRAPH_SCOPE).await;
    let listed = sim
        .send_as(
            token.body["access_token"].as_str(),
            Method::GET,
            "/directory/deletedItems/microsoft.graph.application",
            None,
            false,
        )
        .await;
    assert_eq!(listed.body["value"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// Service principals and consent

#[tokio::test]
async fn service_principal_upsert_post_conflict_and_paged_filters() {
    let sim = Sim::with(SimOptions::default().page_size(1)).await;
    let app = sim.create_app("sp").await;
    let path = format!("/servicePrincipals(appId='{}')", app.app_id);

    sim.patch(&path, json!({})).await.graph_error(404, "Request_ResourceNotFound");
    let created = sim.upsert(&path, json!({"tags": ["managed"]})).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["appId"], app.app_id);
    assert_eq!(created.body["displayName"], "app sp");
    assert_eq!(sim.upsert(&path, json!({"accountEnabled": true})).await.status, 204);
    sim.post("/servicePrincipals", json!({"appId": app.app_id}))
        .await
        .graph_error(409, "Request_MultipleObjectsWithSameKeyValue");

    let by_name = sim.get("/servicePrincipals?$filter=displayName eq 'Office 365 Exchange Online'").await;
    assert_eq!(by_name.body["value"][0]["appId"], EXCHANGE_APP_ID);
    let by_app_id = sim.get(&format!("/servicePrincipals?$filter=appId eq '{}'", app.app_id)).await;
    assert_eq!(by_app_id.body["value"][0]["id"], created.body["id"]);

    // Three principals (Exchange, Graph, ours) at one per page: follow the nextLink.
    let mut seen = Vec::new();
    let mut next = Some(format!("{}/v1.0/servicePrincipals", sim.sim.url()));
    while let Some(url) = next {
        let page = Reply::read(sim.http.get(&url).bearer_auth(&sim.token).send().await.unwrap()).await;
        assert_eq!(page.status, 200, "{page:?}");
        seen.extend(page.body["value"].as_array().unwrap().iter().cloned());
        next = page.body["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 3);

    sim.get("/servicePrincipals?$filter=startswith(displayName,'O')").await.graph_error(400, "BadRequest");
    sim.get("/servicePrincipals?$filter=homepage eq 'x'").await.graph_error(400, "Request_UnsupportedQuery");
}

#[tokio::test]
async fn application_permissions_are_granted_once_and_revocable() {
    let sim = Sim::start().await;
    let app = sim.create_app_with_sp("consent").await;
    let client_sp = sim.service_principal_id(&app.app_id).await;
    let exchange =
        sim.get(&format!("/servicePrincipals?$filter=appId eq '{EXCHANGE_APP_ID}'")).await.body["value"][0].clone();
    let resource_sp = exchange["id"].as_str().unwrap().to_string();
    let mail_send =
        exchange["appRoles"].as_array().unwrap().iter().find(|r| r["value"] == "Mail.Send").unwrap()["id"].clone();
    assert_eq!(mail_send, MAIL_SEND_ROLE);

    let assign_path = format!("/servicePrincipals/{resource_sp}/appRoleAssignedTo");
    let body = json!({"principalId": client_sp, "resourceId": resource_sp, "appRoleId": mail_send});
    let assigned = sim.post(&assign_path, body.clone()).await;
    assert_eq!(assigned.status, 201, "{assigned:?}");
    assert_eq!(assigned.body["resourceDisplayName"], "Office 365 Exchange Online");
    let assignment_id = assigned.body["id"].as_str().unwrap().to_string();

    let duplicate = sim.post(&assign_path, body).await;
    let error = duplicate.graph_error(400, "Request_BadRequest");
    assert_eq!(error["message"], "Permission being assigned already exists on the object.");
    sim.post(
        &assign_path,
        json!({"principalId": client_sp, "resourceId": resource_sp, "appRoleId": "00000000-0000-4000-8000-000000000000"}),
    )
    .await
    .graph_error(400, "Request_BadRequest");

    let listed = sim.get(&format!("/servicePrincipals/{client_sp}/appRoleAssignments")).await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["value"][0]["appRoleId"], MAIL_SEND_ROLE);

    let revoked = sim.delete(&format!("{assign_path}/{assignment_id}")).await;
    assert_eq!(revoked.status, 204);
    assert!(sim.sim.app_role_assignments(TENANT).is_empty());
    sim.delete(&format!("{assign_path}/{assignment_id}")).await.graph_error(404, "Request_ResourceNotFound");
}

#[tokio::test]
async fn delegated_grants_support_create_read_update_delete() {
    let sim = Sim::start().await;
    let app = sim.create_app_with_sp("grants").await;
    let client_sp = sim.service_principal_id(&app.app_id).await;
    let resource_sp = sim.service_principal_id(EXCHANGE_APP_ID).await;

    let body = json!({
        "clientId": client_sp, "consentType": "AllPrincipals",
        "resourceId": resource_sp, "scope": "SMTP.Send"
    });
    let created = sim.post("/oauth2PermissionGrants", body.clone()).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_string();
    sim.post("/oauth2PermissionGrants", body).await.graph_error(409, "Request_MultipleObjectsWithSameKeyValue");

    let listed = sim.get(&format!("/oauth2PermissionGrants?$filter=clientId eq '{client_sp}'")).await;
    assert_eq!(listed.body["value"][0]["id"], id);
    assert_eq!(listed.body["value"][0]["principalId"], Value::Null);

    let path = format!("/oauth2PermissionGrants/{id}");
    let updated = sim.patch(&path, json!({"scope": "SMTP.Send offline_access"})).await;
    assert_eq!(updated.status, 204);
    assert_eq!(sim.get(&path).await.body["scope"], "SMTP.Send offline_access");

    assert_eq!(sim.delete(&path).await.status, 204);
    sim.get(&path).await.graph_error(404, "Request_ResourceNotFound");
    assert!(sim.sim.oauth2_permission_grants(TENANT).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Routing and bookkeeping

#[tokio::test]
async fn unknown_routes_and_methods_answer_like_graph() {
    let sim = Sim::start().await;
    let unknown = sim.get("/users").await;
    let error = unknown.graph_error(400, "BadRequest");
    assert_eq!(error["message"], "Resource not found for the segment 'users'.");
    sim.send(Method::PUT, "/applications/abc", Some(json!({})), false).await.graph_error(405, "Request_BadRequest");
    let calls = sim.sim.calls();
    assert!(calls.iter().any(|c| c.route == "GET <unmatched>"));
    assert_eq!(sim.sim.count("GET <unmatched>"), 1);
}

#[tokio::test]
async fn every_call_is_recorded_with_its_route_template_and_tenant() {
    let sim = Sim::start().await;
    sim.sim.reset_calls();
    let app = sim.create_app("records").await;
    sim.add_password(&app, json!({})).await;

    let calls = sim.sim.calls();
    assert_eq!(
        calls.iter().map(|c| c.route.as_str()).collect::<Vec<_>>(),
        vec![routes::UPSERT_APPLICATION, routes::ADD_PASSWORD]
    );
    assert!(calls.iter().all(|c| c.tenant.as_deref() == Some(TENANT)));
    assert!(calls.iter().all(|c| c.client_id.as_deref() == Some(OPERATOR)));
    assert_eq!(calls[1].path, format!("/v1.0/applications/{}/addPassword", app.id));
    assert_eq!(calls[1].status, 200);
    assert_eq!(sim.sim.count(routes::ADD_PASSWORD), 1);

    sim.sim.reset_calls();
    assert!(sim.sim.calls().is_empty());
}

#[tokio::test]
async fn the_server_only_speaks_tls_trusted_through_the_test_ca() {
    let sim = Sim::start().await;
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).build().unwrap();
    let result = untrusting.get(format!("{}/v1.0/applications", sim.sim.url())).send().await;
    assert!(result.is_err(), "a client without the CA must not connect");
    assert!(sim.sim.url().starts_with("https://127.0.0.1:"));
    assert!(sim.sim.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}
